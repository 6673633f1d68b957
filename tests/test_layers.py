"""The layering of DESIGN.md at run time (import-linter checks it statically in `make test`): serving loads
checkpoints and never imports the benchmark or the trainers; `import zoo2vec` stays light."""

import subprocess
import sys

import pytest


def _imported_after(statement: str, prefixes: tuple[str, ...]) -> list[str]:
    code = (f"import sys; {statement}; "
            f"print(','.join(sorted(m for m in sys.modules if m.startswith({prefixes!r}))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def test_import_zoo2vec_brings_in_no_torch_benchmark_or_trainer():
    assert _imported_after("import zoo2vec", ("torch", "zoo2vec.eval", "zoo2vec.train")) == []


@pytest.mark.parametrize("module", ["zoo2vec.api", "zoo2vec.search.engine", "zoo2vec.jobs.indexing",
                                    "zoo2vec.encoders.alignment", "zoo2vec.encoders.clip", "zoo2vec.encoders.moe",
                                    "zoo2vec.encoders.reference"])
def test_serving_modules_import_no_benchmark_or_trainer(module):
    assert _imported_after(f"import {module}", ("zoo2vec.eval", "zoo2vec.train")) == []


def test_finding_the_adapters_imports_no_benchmark_or_trainer():
    """The registry imports its modules by listing its folder, which import-linter cannot see."""
    statement = "from zoo2vec.zoo import adapters; adapters.available()"
    assert _imported_after(statement, ("zoo2vec.eval", "zoo2vec.train")) == []
