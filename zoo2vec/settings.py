"""Where zoo2vec keeps its files and finds shared data; read from the environment each time."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path


def home() -> Path:
    """Data home for built zoos, probe outputs and caches (ZOO2VEC_HOME, default ~/.cache/zoo2vec)."""
    return Path(os.environ.get("ZOO2VEC_HOME", Path.home() / ".cache" / "zoo2vec")).expanduser()


def shared_data() -> Path:
    """Folder of the shared public datasets (ZOO2VEC_DATA, default ../shared/data)."""
    return Path(os.environ.get("ZOO2VEC_DATA", Path.cwd().parent / "shared" / "data")).expanduser()


def demo_zoo_path() -> Path:
    return home() / "zoos" / "demo"


def bench_zoo_path() -> Path:
    return home() / "zoos" / "bench"


# Limits on what a task may hold, checked before the work they bound (zoo2vec.data.task). The defaults fit a
# 24 GiB machine with room for the models and encoders: at the limits a task holds at most 250 Mpixels of images
# (3 GiB as float32 RGB, plus one 50 Mpixel image being decoded: 150 MB of bytes, 600 MB as floats) or 100 M
# characters of text (at most 400 MB as Python strings); a table is read 10,000 rows at a time and never holds
# more than one 50 MiB file; a zip writes at most 500 MiB to a temporary folder. Each is raised by its setting.
@dataclass(frozen=True)
class Limit:
    """One bound on a task input: `what` it counts, the environment `setting` that raises it, and its `default`."""

    what: str
    setting: str
    default: int

    def get(self) -> int:
        """The limit in force: the setting's value (a positive whole number; 1e6 and 100_000 read too), else the
        default."""
        raw = os.environ.get(self.setting, "").strip()
        if not raw:
            return self.default
        try:
            value = float(raw.replace("_", ""))
        except ValueError:
            value = float("nan")
        if not (math.isfinite(value) and value >= 1 and value.is_integer() and value < 2**63):
            from zoo2vec.errors import ConfigError

            raise ConfigError(f"{self.setting}={raw!r}: the limit on {self.what} must be a positive whole number "
                              f"(default {self.default:,})")
        return int(value)


MAX_SAMPLES = Limit("samples (files, rows) per task", "ZOO2VEC_MAX_SAMPLES", 100_000)
MAX_CLASSES = Limit("classes per task", "ZOO2VEC_MAX_CLASSES", 1_000)
MAX_TEXT_CHARS = Limit("characters per text sample", "ZOO2VEC_MAX_TEXT_CHARS", 100_000)
MAX_TASK_CHARS = Limit("characters of text per task", "ZOO2VEC_MAX_TASK_CHARS", 100_000_000)
MAX_IMAGE_PIXELS = Limit("pixels per image", "ZOO2VEC_MAX_IMAGE_PIXELS", 50_000_000)
MAX_TASK_PIXELS = Limit("pixels of images per task", "ZOO2VEC_MAX_TASK_PIXELS", 250_000_000)
MAX_FILE_BYTES = Limit("bytes per file", "ZOO2VEC_MAX_FILE_BYTES", 50 << 20)
MAX_EXPANDED_BYTES = Limit("bytes a zip or a Parquet file expands to", "ZOO2VEC_MAX_EXPANDED_BYTES", 500 << 20)
MAX_ZIP_ENTRIES = Limit("entries per zip", "ZOO2VEC_MAX_ZIP_ENTRIES", 100_000)
LIMITS = (MAX_SAMPLES, MAX_CLASSES, MAX_TEXT_CHARS, MAX_TASK_CHARS, MAX_IMAGE_PIXELS, MAX_TASK_PIXELS,
          MAX_FILE_BYTES, MAX_EXPANDED_BYTES, MAX_ZIP_ENTRIES)

# not a task limit: how many generated inputs the fuzz tests (tests/test_fuzz_inputs.py) try per entry point
FUZZ_EXAMPLES = Limit("generated inputs per entry point of the fuzz tests", "ZOO2VEC_FUZZ_EXAMPLES", 1_000)
