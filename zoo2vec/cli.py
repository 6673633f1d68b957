"""The console verbs: demo | index | runs | search | models | card | serve (use); eval (the benchmark); train-align | train-words |
train-clip | train-text (trainers of what search loads)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from zoo2vec import settings
from zoo2vec.errors import Zoo2VecError


class UserError(click.ClickException):
    """A user mistake: one line on stderr, exit code 2, no traceback."""

    exit_code = 2


class Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Zoo2VecError as exc:
            raise UserError(str(exc)) from None


def _zoo_option(f):
    return click.option("--zoo", "zoo_path", type=click.Path(path_type=Path), default=None,
                        help="Zoo folder (default: $ZOO2VEC_ZOO, else the demo zoo in $ZOO2VEC_HOME).")(f)


def _zoo_path(zoo_path: Path | None) -> Path:
    if zoo_path is not None:
        return zoo_path
    return Path(os.environ["ZOO2VEC_ZOO"]) if os.environ.get("ZOO2VEC_ZOO") else settings.demo_zoo_path()


@click.group(cls=Group)
@click.version_option(package_name="zoo2vec")
def main():
    """Find the right model in a model zoo for your task."""


def _index(root: Path, timeout: float, trust_pickle: bool, workers: int | None = None, executor: str = "local",
           address: str | None = None, device: str = "auto"):
    from tqdm import tqdm

    import zoo2vec

    bar = tqdm(total=None, unit="model", desc="indexing", file=sys.stderr, leave=False)

    def progress(name, done, total):
        bar.total = total
        bar.n = done
        bar.set_postfix_str(name)
        bar.refresh()

    try:
        report = zoo2vec.open(root).index(timeout_s=timeout, trust_pickle=trust_pickle, workers=workers,
                                          executor=executor, address=address, device=device, progress=progress)
    finally:
        bar.close()
    click.echo(report.summary(), err=True)
    return report


def _build_demo(root: Path):
    from tqdm import tqdm

    from zoo2vec.train.demo_zoo import build_demo_zoo, demo_size

    with tqdm(total=demo_size(), unit="model", desc="training demo zoo", file=sys.stderr) as bar:
        def progress(name):
            bar.set_postfix_str(name)
            bar.update(1)

        build_demo_zoo(root, progress=progress)


@main.command()
@click.option("--no-app", is_flag=True, help="Build and index only; print a sample search instead of starting the app.")
@click.option("--port", default=8501, show_default=True, help="Port for the app.")
def demo(no_app: bool, port: int):
    """Build the demo zoo (44 real models in every format it reads), index it, and start the search app."""
    root = settings.demo_zoo_path()
    _build_demo(root)
    _index(root, timeout=120.0, trust_pickle=False)
    if no_app:
        import zoo2vec

        click.echo('\nzoo2vec search --text "handwritten digit recognition"')
        click.echo(str(zoo2vec.open(root).search(text="handwritten digit recognition", k=5)))
        return
    _serve(root, port)


def _default_hf_cache() -> str:
    from huggingface_hub.constants import HF_HUB_CACHE

    return HF_HUB_CACHE


@main.command()
@click.argument("zoo_path", required=False, type=click.Path(path_type=Path))
@click.option("--timeout", default=120.0, show_default=True, help="Seconds a model may take on the probe set.")
@click.option("--trust-pickle", is_flag=True, help="Allow pickled checkpoints (they can run arbitrary code).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes that load and run the models (default: one per core).")
@click.option("--hf-cache", "hf_cache", is_flag=False, flag_value="", default=None, metavar="[DIR]",
              help="Also index every classifier in a Hugging Face cache (default: $HF_HUB_CACHE); the zoo's zoo.json "
                   "keeps it as a source for later runs. Give it after the zoo's path.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where models run: worker processes on this machine, or Ray tasks (pip install 'zoo2vec[ray]').")
@click.option("--address", default=None, help="The Ray cluster to join (ray.init's address, e.g. ray://head:10001); "
                                               "default: a local Ray instance.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where models run their forward passes: auto is the GPU when torch sees one (with --executor ray: "
                   "when the cluster has GPUs).")
@click.option("--json", "as_json", is_flag=True, help="Print the run's report as JSON on stdout.")
@click.option("--schedule", default=None, metavar="CRON",
              help="Run on a cron expression in the foreground, e.g. '0 2 * * *' (every night at 02:00), until Ctrl-C.")
@click.option("--max-runs", type=click.IntRange(min=1), default=None, help="With --schedule: stop after N runs.")
def index(zoo_path: Path | None, timeout: float, trust_pickle: bool, workers: int | None, hf_cache: str | None,
          executor: str, address: str | None, device: str, as_json: bool, schedule: str | None, max_runs: int | None):
    """Probe new or changed models of a zoo and publish a new index snapshot.

    Exit code 0: every model indexed (or skipped, not being a classifier); 1: some failed (recorded, the rest
    published; they are tried again next run); 2: bad input or configuration. Old snapshots beyond the newest
    $ZOO2VEC_KEEP_SNAPSHOTS (default 3) and probe outputs no model uses any more are deleted after each run."""
    root = _zoo_path(zoo_path)
    if max_runs is not None and schedule is None:
        raise UserError("--max-runs goes with --schedule")
    if hf_cache is not None:
        from zoo2vec.zoo.adapters.hf_cache import KIND, scan
        from zoo2vec.zoo.layout import ZooLayout

        cache = Path(hf_cache or _default_hf_cache()).expanduser()
        if ZooLayout(cache).models.is_dir() or ZooLayout(cache).manifest_path.is_file():
            raise UserError(f"{cache} is a zoo, not a Hugging Face cache: give the zoo first, then the option "
                            "(zoo2vec index ZOO --hf-cache [DIR])")
        if not scan(cache):  # checked before the manifest names it
            raise UserError(f"{cache} holds no Hugging Face models (no models--ORG--NAME folders): point at the hub "
                            "folder, e.g. ~/.cache/huggingface/hub")
        if ZooLayout(root).add_source(KIND, cache):
            click.echo(f"{root / 'zoo.json'}: added the Hugging Face cache {cache} as a source", err=True)

    def run_once():
        report = _index(root, timeout, trust_pickle, workers, executor, address, device)
        if as_json:
            click.echo(json.dumps(report.to_dict()))
        if report.failed:
            click.echo(f"{len(report.failed)} model(s) failed; they will be retried on the next run", err=True)
        return report

    if schedule is not None:
        from zoo2vec.jobs.schedule import run_on_schedule, trigger

        trigger(schedule)  # a bad expression fails here, exit code 2
        run_on_schedule(schedule, run_once, max_runs=max_runs, say=lambda text: click.echo(text, err=True))
        return
    if run_once().failed:
        raise click.exceptions.Exit(1)


@main.command()
@click.argument("path", type=click.Path(path_type=Path, exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print the card as JSON (no sources).")
def card(path: Path, as_json: bool):
    """Print the card zoo2vec would index for a model folder, and where each field came from."""
    from zoo2vec.zoo.adapters import read_card

    resolved = read_card(path)
    fields = resolved.card.to_dict()
    if as_json:
        click.echo(json.dumps(fields, indent=2))
        return
    width = max(map(len, fields))
    for key, value in fields.items():
        shown = json.dumps(value) if not isinstance(value, str) else value
        shown = shown if len(shown) <= 70 else shown[:67] + "..."
        click.echo(f"{key:<{width}}  {shown:<70}  {resolved.origin.get(key, 'default')}")


@main.command()
@_zoo_option
@click.option("--task", "task_path", type=click.Path(path_type=Path), help="Labelled samples: folder, .zip, .csv, .tsv or .parquet.")
@click.option("--text", help="What you need, in words.")
@click.option("-k", default=5, show_default=True, help="How many models to return.")
@click.option("--where", "where", multiple=True, metavar="FIELD OP VALUE",
              help="Filter, repeatable: license=mit, params<5e6, tags=digits, modality=image, source~demo.")
@click.option("--text-column", default="text", show_default=True, help="Text column of a table task.")
@click.option("--label-column", default="label", show_default=True, help="Label column of a table task.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON lines.")
@click.option("--verify", default=0, show_default=True, metavar="N",
              help="Run the first N candidates on the task's samples and re-rank them by measured accuracy.")
def search(zoo_path, task_path, text, k, where, text_column, label_column, as_json, verify):
    """Rank the zoo's models for a task and/or a text query."""
    import zoo2vec
    from zoo2vec.index.filters import parse

    if task_path is None and not text:
        raise UserError("give --task PATH, --text \"...\", or both")
    if k < 1:
        raise UserError(f"-k must be at least 1, got {k}")
    task = None
    if task_path is not None:
        task = zoo2vec.Task.from_path(task_path, text_column=text_column, label_column=label_column)
    results = zoo2vec.open(_zoo_path(zoo_path)).search(task, text, k=k, where=parse(list(where)), verify=verify)
    if as_json:
        for r in results:
            click.echo(json.dumps({"rank": r.rank, "model": r.name, "score": r.score, "measured": r.measured,
                                   "kernel_alignment": r.kernel_alignment,
                                   "concept_match": r.concept_match, "text_similarity": r.text_similarity,
                                   "words_score": r.words_score, "shares": r.shares, "why": r.why}))
    else:
        click.echo(str(results))


@main.command()
@_zoo_option
@click.option("--failed", is_flag=True, help="Show the probe runs that failed or were skipped, with their reasons.")
def models(zoo_path, failed):
    """List the indexed models (or the failed probe runs)."""
    import pandas as pd

    import zoo2vec

    zoo = zoo2vec.open(_zoo_path(zoo_path))
    with pd.option_context("display.width", 200, "display.max_rows", 500, "display.max_colwidth", 60):
        if failed:
            runs = zoo.runs()
            runs = runs[runs.status.isin(["failed", "skipped"])]
            click.echo(runs[["name", "status", "reason", "ran_at"]].to_string(index=False))
        else:
            click.echo(zoo.models()[["name", "modality", "license", "params", "tags"]].to_string(index=False))


@main.command()
@click.argument("zoo_path", required=False, type=click.Path(path_type=Path))
@click.option("--last", type=click.IntRange(min=1), default=20, show_default=True, help="How many runs to show.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON (with every name and reason).")
def runs(zoo_path: Path | None, last: int, as_json: bool):
    """The zoo's indexing runs, newest first: when, where, what was probed, reused, failed and removed."""
    import zoo2vec

    history = zoo2vec.open(_zoo_path(zoo_path)).history(last)
    if as_json:
        for column in ("started_at", "ended_at"):
            history[column] = history[column].map(lambda t: t.isoformat())
        click.echo(history.to_json(orient="records"))
        return
    click.echo(f"{'started':<19}  {'executor':<14} {'models':>6} {'probed':>6} {'reused':>6} {'failed':>6} "
               f"{'skipped':>7} {'removed':>7} {'seconds':>8}")
    for run in history.itertuples():
        click.echo(f"{run.started_at:%Y-%m-%d %H:%M:%S}  {f'{run.executor} x{run.workers}':<14} {run.models:>6} "
                   f"{run.probed:>6} {run.reused:>6} {run.failed:>6} {run.skipped:>7} {run.removed:>7} "
                   f"{run.seconds:>8.1f}")
        for name, reason in sorted(run.report.get("failed", {}).items()):
            click.echo(f"    failed {name}: {reason.splitlines()[0] if reason else ''}")  # --json has it whole


@main.command("eval")
@click.option("--quick", is_flag=True, help="A small version (12 models, a few tasks) that checks the pipeline in minutes.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("bench"), show_default=True,
              help="Where RESULTS.md, results.json and the plots go.")
@click.option("--fresh", is_flag=True, help="Recompute the cached ground truth instead of reusing it.")
@click.option("--study", is_flag=True, help="Instead: compare probe-set sizes and reference encoders (bench/STUDY.md).")
@click.option("--reliability", is_flag=True,
              help="Instead: fuzz every input, kill -9 indexing, query during swaps (bench/RELIABILITY.md).")
@click.option("--only", "parts", multiple=True, type=click.Choice(["fuzz", "kill9", "swap", "regressions"]),
              help="With --reliability: run only these parts (the others are kept from the last run).")
@click.option("--inputs", default=10_000, show_default=True, help="With --reliability: fuzzed inputs in all.")
def eval_(quick, out_dir, fresh, study, reliability, parts, inputs):
    """Benchmark: build the bench zoo, measure ground truth, compare zoo2vec with every baseline."""
    if reliability:
        from zoo2vec.eval import reliability_bench

        numbers = reliability_bench.run(settings.home(), inputs=inputs, only=parts or reliability_bench.PARTS,
                                        progress=lambda text: click.echo(text, err=True))
        path = reliability_bench.write(numbers, out_dir)
        click.echo(f"{json.dumps(reliability_bench.entry(numbers))}\nwrote {path}")
        return
    if study:
        from zoo2vec.eval import study as probe_study

        probe_study.run(out_dir, progress=lambda text: click.echo(text, err=True))
        click.echo(f"wrote {out_dir / 'STUDY.md'}")
        return

    from zoo2vec.eval import report
    from zoo2vec.eval.run import run

    config_name = "quick" if quick else "bench"
    results = run(config_name, fresh=fresh, progress=lambda text: click.echo(text, err=True))
    report.write(results, out_dir, config_name)
    ours, logme = results["held_out"]["zoo2vec"], results["held_out"]["logme"]
    click.echo(f"zoo2vec weighted tau {ours['weighted_tau']:.3f} (LogME {logme['weighted_tau']:.3f}), "
               f"top-3 {ours['top3']:.2f}; wrote {out_dir / 'RESULTS.md'}")


@main.command("train-align")
@click.option("--config", "config_name", type=click.Choice(["bench", "quick"]), default="bench", show_default=True,
              help="Bench config whose meta-training tasks and ground truth to learn from.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Checkpoint path (default: $ZOO2VEC_HOME/alignments/align-3.json).")
@click.option("--hidden", default=0, show_default=True, help="Hidden units of the scorer (0: linear, chosen by cross-validation).")
@click.option("--blend", default=0.75, show_default=True, help="Weight of the untrained score mixed into the learned one.")
@click.option("--plain-only/--with-transformed", default=True, show_default=True,
              help="Fit on the plain meta-training tasks only, or on their transformed copies too.")
def train_align(config_name, out, hidden, blend, plain_only):
    """Learn the alignment from meta-training tasks (never held-out ones) and their measured ground truth. The
    defaults are the packaged default's (align-3) recipe."""
    from zoo2vec.eval.align import train

    if not 0 <= blend < 1:
        raise click.UsageError(f"--blend {blend}: a weight from 0 (learned only) up to, not including, 1")
    scorer, path = train(config_name, out=out, hidden=hidden, blend=blend, plain_only=plain_only,
                         progress=lambda text: click.echo(text, err=True))
    cv = scorer.trained_on.get("cross_validation", {})
    if cv.get("learned") is not None:
        click.echo(f"leave-one-dataset-out on meta-training tasks: weighted tau {cv['learned']:.3f} "
                   f"(untrained {cv['untrained']:.3f})")
    click.echo(f"wrote {path}; search with it: ZOO2VEC_ALIGN={path} (or zoo2vec.open(zoo, alignment=...))")


@main.command("train-clip")
@click.option("--config", "config_name", default="tiny-clip-v1", show_default=True, help="CLIP config by name.")
def train_clip(config_name):
    """Train zoo2vec's own small CLIP on meta-training image-caption pairs (no held-out dataset)."""
    from zoo2vec.encoders import clip
    from zoo2vec.eval import captions
    from zoo2vec.eval.tasks import held_out_datasets, load_config

    sidecar = captions.train(config_name, held_out=held_out_datasets(load_config("bench")),
                             progress=lambda text: click.echo(text, err=True))
    click.echo(f"trained {config_name} on {sidecar['pairs']} image-caption pairs in {sidecar['seconds']:.0f} s; "
               f"wrote {clip.checkpoint_dir(config_name)}")
    for dataset, z in sidecar["zero_shot"].items():
        click.echo(f"  zero-shot on held-out {dataset}: {z['accuracy']:.3f} (chance {z['chance']:.3f})")


@main.command("train-words")
@click.option("--config", "config_name", default="bench", show_default=True, help="Bench config (bench or quick).")
@click.option("--out", type=click.Path(path_type=Path), help="Checkpoint path (default: the data home's alignments/).")
def train_words(config_name, out):
    """Learn the words scorer (sentence -> predicted accuracy) and its weight against samples, on meta-training tasks."""
    from zoo2vec.eval.text_queries import train_words

    scorer, path = train_words(config_name, out=out, progress=lambda text: click.echo(text, err=True))
    click.echo(f"words' weight when samples come too: {scorer.trained_on['fusion_weight']:.2f} (by weighted tau on "
               f"meta-training tasks)")
    click.echo(f"wrote {path}; search with it: ZOO2VEC_WORDS={path} (or zoo2vec.open(zoo, words=...))")


@main.command("train-text")
@click.option("--config", "config_name", default="bench", show_default=True, help="Bench config whose meta-training zoo gives the pairs.")
def train_text(config_name):
    """Train the mixture-of-experts text encoder on (query, card) pairs from the meta-training zoo."""
    from zoo2vec.encoders import moe
    from zoo2vec.eval.text_queries import train_encoder

    sidecar = train_encoder(config_name, progress=lambda text: click.echo(text, err=True))
    click.echo(f"trained {sidecar['config']} on {sidecar['pairs']} pairs in {sidecar['seconds']:.0f} s; "
               f"wrote {moe.checkpoint_dir(sidecar['config'])}")


def _serve(root: Path, port: int):
    import subprocess

    from zoo2vec.errors import require

    require("streamlit", "ui")
    app = Path(__file__).parent / "ui" / "app.py"
    env = dict(os.environ, ZOO2VEC_ZOO=str(root))
    click.echo(f"zoo2vec app on http://localhost:{port} (Ctrl-C to stop)", err=True)
    upload_mb = max(1, -(-settings.MAX_FILE_BYTES.get() // 2**20))  # Streamlit refuses a bigger upload before reading it
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(port),
           "--server.headless", "true", "--browser.gatherUsageStats", "false", "--server.maxUploadSize", str(upload_mb)]
    try:
        subprocess.run(cmd, env=env, check=False)
    except KeyboardInterrupt:
        pass


@main.command()
@_zoo_option
@click.option("--port", default=8501, show_default=True)
def serve(zoo_path, port):
    """Start the Streamlit search app on a zoo."""
    root = _zoo_path(zoo_path)
    if not root.is_dir():
        raise UserError(f"no zoo at {root}: run `zoo2vec demo --no-app` or pass --zoo")
    _serve(root, port)


if __name__ == "__main__":
    main()
