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


def _zoo_arguments(f):
    """Every command that works on a zoo names it the same three ways: `zoo2vec CMD ZOO`, `zoo2vec CMD --zoo ZOO`,
    or neither ($ZOO2VEC_ZOO, else the demo zoo in $ZOO2VEC_HOME), as zoo2vec.open() does."""
    f = click.option("--zoo", "zoo_option", type=click.Path(path_type=Path), default=None,
                     help="The zoo folder, as the ZOO argument (default: $ZOO2VEC_ZOO, else the demo zoo in "
                          "$ZOO2VEC_HOME).")(f)
    return click.argument("zoo_path", required=False, type=click.Path(path_type=Path))(f)


def _named_zoo(zoo_path: Path | None, zoo_option: Path | None) -> Path | None:
    """The zoo the command line names (the ZOO argument or --zoo), None when it names none."""
    if zoo_path is not None and zoo_option is not None and zoo_path != zoo_option:
        raise UserError(f"two zoos given: {zoo_path} and --zoo {zoo_option}; name one")
    return zoo_path if zoo_path is not None else zoo_option


def _zoo_path(zoo_path: Path | None, zoo_option: Path | None = None) -> Path:
    from zoo2vec.api import default_zoo

    named = _named_zoo(zoo_path, zoo_option)
    return named if named is not None else default_zoo()[0]


def _open(zoo_path: Path | None, zoo_option: Path | None):
    """zoo2vec.open() of the named zoo, or of the default one (whose error then says where the default came from)."""
    import zoo2vec

    return zoo2vec.open(_named_zoo(zoo_path, zoo_option))


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
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the app listens on.")
def demo(no_app: bool, port: int, host: str):
    """Build the demo zoo (44 real models in every format it reads), index it, and start the search app."""
    root = settings.demo_zoo_path()
    _build_demo(root)
    _index(root, timeout=120.0, trust_pickle=False)
    if no_app:
        import zoo2vec

        click.echo('\nzoo2vec search --text "handwritten digit recognition"')
        click.echo(str(zoo2vec.open(root).search(text="handwritten digit recognition", k=5)))
        return
    _serve(root, port, host)


def _default_hf_cache() -> str:
    from huggingface_hub.constants import HF_HUB_CACHE

    return HF_HUB_CACHE


@main.command()
@_zoo_arguments
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
def index(zoo_path: Path | None, zoo_option: Path | None, timeout: float, trust_pickle: bool, workers: int | None,
          hf_cache: str | None, executor: str, address: str | None, device: str, as_json: bool, schedule: str | None, max_runs: int | None):
    """Probe new or changed models of a zoo and publish a new index snapshot.

    Exit code 0: every model indexed (or skipped, not being a classifier); 1: some failed (recorded, the rest
    published; they are tried again next run); 2: bad input or configuration. Old snapshots beyond the newest
    $ZOO2VEC_KEEP_SNAPSHOTS (default 3) and probe outputs no model uses any more are deleted after each run."""
    root = _zoo_path(zoo_path, zoo_option)
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
@_zoo_arguments
@click.option("--task", "task_path", type=click.Path(path_type=Path), help="Labelled samples: folder, .zip, .csv, .tsv or .parquet.")
@click.option("--text", help="What you need, in words.")
@click.option("-k", default=5, show_default=True, help="How many models to return.")
@click.option("--where", "where", multiple=True, metavar="FIELD OP VALUE",
              help="Filter, repeatable; a field given twice meets both: license=mit, params<5e6, tags=digits, "
                   "modality=image, source~demo, --where 'params>100' --where 'params<1e6'. A model with no known "
                   "parameter count is left out by any params filter.")
@click.option("--text-column", default="text", show_default=True, help="Text column of a table task.")
@click.option("--label-column", default="label", show_default=True, help="Label column of a table task.")
@click.option("--json", "as_json", is_flag=True,
              help="Print each result as one JSON line, every field (license, params, modality, verify_error...).")
@click.option("--long", "long_", is_flag=True, help="Print each result's whole explanation under its row.")
@click.option("--verify", default=0, show_default=True, metavar="N",
              help="Run the first N candidates on the task's samples and re-rank them by LogME (5 is where it pays).")
def search(zoo_path, zoo_option, task_path, text, k, where, text_column, label_column, as_json, long_, verify):
    """Rank the zoo's models for a task and/or a text query: a table of rank, model, predicted score, modality,
    license, params and the start of why (--long: all of it; --json: every field)."""
    import zoo2vec
    from zoo2vec.index.filters import parse

    if task_path is None and not text:
        raise UserError("give --task PATH, --text \"...\", or both")
    if k < 1:
        raise UserError(f"-k must be at least 1, got {k}")
    task = None
    if task_path is not None:
        task = zoo2vec.Task.from_path(task_path, text_column=text_column, label_column=label_column)
    zoo = _open(zoo_path, zoo_option)
    conditions = parse(list(where))
    results = zoo.search(task, text, k=k, where=conditions, verify=verify)
    if "params" in conditions:
        unknown = int(zoo.models()["params"].isna().sum())
        if unknown:
            click.echo(f"note: {unknown} model(s) with no known parameter count are left out by the params filter",
                       err=True)
    if as_json:
        for r in results:
            click.echo(json.dumps(r.to_dict()))
    else:
        click.echo(results.table(long=long_))


@main.command()
@_zoo_arguments
@click.option("--failed", is_flag=True,
              help="Show the models that fail now (failed or skipped in the latest run), once each, with the reason.")
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON records (every column).")
def models(zoo_path, zoo_option, failed, as_json):
    """List the indexed models (or the models that fail now)."""
    import pandas as pd

    from zoo2vec.search.results import params_shown

    zoo = _open(zoo_path, zoo_option)
    table = zoo.failures() if failed else zoo.models()
    if as_json:
        click.echo(table.to_json(orient="records", date_format="iso"))
        return
    if table.empty:
        click.echo("no failed models" if failed else "no indexed models")
        return
    with pd.option_context("display.width", 200, "display.max_rows", None, "display.max_colwidth", 60):
        if failed:
            table["reason"] = [" ".join(str(r).split()) for r in table["reason"]]  # one line each; --json has it whole
            click.echo(table[["name", "status", "reason", "ran_at"]].to_string(index=False))
        else:
            table["params"] = table["params"].map(params_shown)
            table["tags"] = table["tags"].map(lambda tags: ",".join(tags) if tags is not None else "")
            click.echo(table[["name", "modality", "license", "params", "tags"]].to_string(index=False))


@main.command()
@_zoo_arguments
@click.option("--last", type=click.IntRange(min=1), default=20, show_default=True, help="How many runs to show.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON (with every name and reason).")
def runs(zoo_path: Path | None, zoo_option: Path | None, last: int, as_json: bool):
    """The zoo's indexing runs, newest first: when, how each ended (published; failed, interrupted or killed, and in
    which stage; running), where, what was probed, reused, failed and removed."""
    history = _open(zoo_path, zoo_option).history(last)
    if as_json:
        for column in ("started_at", "ended_at"):
            history[column] = history[column].map(lambda t: t.isoformat())
        click.echo(history.to_json(orient="records"))
        return
    click.echo(f"{'started':<19}  {'status':<11} {'executor':<14} {'models':>6} {'probed':>6} {'reused':>6} "
               f"{'failed':>6} {'skipped':>7} {'removed':>7} {'seconds':>8}")
    for run in history.itertuples():
        counts = " ".join(f"{_count(getattr(run, what)):>{width}}" for what, width in (
            ("models", 6), ("probed", 6), ("reused", 6), ("failed", 6), ("skipped", 7), ("removed", 7)))
        click.echo(f"{run.started_at:%Y-%m-%d %H:%M:%S}  {run.status:<11} {f'{run.executor} x{run.workers}':<14} "
                   f"{counts} {run.seconds:>8.1f}")
        if run.status != "published":  # stopped before publishing: where, and why
            click.echo(f"    stopped in its {run.report.get('stage')} stage: {run.report.get('reason', '')}")
        for name, reason in sorted(run.report.get("failed", {}).items()):
            click.echo(f"    failed {name}: {reason.splitlines()[0] if reason else ''}")  # --json has it whole


def _count(value) -> str:
    """A count of the runs table; "-" for a run that stopped before it counted."""
    return "-" if value is None or value != value else str(int(value))


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
              help="Checkpoint path (default: $ZOO2VEC_HOME/alignments/align-4.json).")
@click.option("--hidden", default=0, show_default=True, help="Hidden units of the scorer (0: linear, chosen by cross-validation).")
@click.option("--blend", default=0.75, show_default=True, help="Weight of the untrained score mixed into the learned one.")
@click.option("--plain-only/--with-transformed", default=True, show_default=True,
              help="Fit on the plain meta-training tasks only, or on their transformed copies too.")
def train_align(config_name, out, hidden, blend, plain_only):
    """Learn the alignment from meta-training tasks (never held-out ones) and their measured ground truth. The
    defaults are the packaged default's (align-4) recipe."""
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
    click.echo(f"words' weight when samples come too: {scorer.trained_on['fusion_weight']:.2f} (chosen by "
               f"leave-one-domain-out CV: bench/words_study.py)")
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


def _serve(root: Path, port: int, host: str = "127.0.0.1"):
    import subprocess

    from zoo2vec.errors import require

    require("streamlit", "ui")
    app = Path(__file__).parent / "ui" / "app.py"
    env = dict(os.environ, ZOO2VEC_ZOO=str(root))
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"zoo2vec app on http://{shown}:{port} (Ctrl-C to stop)", err=True)
    upload_mb = max(1, -(-settings.MAX_FILE_BYTES.get() // 2**20))  # Streamlit refuses a bigger upload before reading it
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(port),
           "--server.address", host, "--server.headless", "true", "--browser.gatherUsageStats", "false", "--server.maxUploadSize", str(upload_mb)]
    try:
        subprocess.run(cmd, env=env, check=False)
    except KeyboardInterrupt:
        pass


@main.command()
@_zoo_arguments
@click.option("--port", default=8501, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 opens the app to every machine that can reach this one.")
def serve(zoo_path, zoo_option, port, host):
    """Start the Streamlit search app on a zoo."""
    _serve(_existing_zoo(zoo_path, zoo_option, "serve"), port, host)


def _existing_zoo(zoo_path, zoo_option, command: str) -> Path:
    """The zoo a serving command names (as _zoo_path resolves it), which must exist."""
    root = _zoo_path(zoo_path, zoo_option)
    if not root.is_dir():
        raise UserError(f"no zoo at {root}: run `zoo2vec demo --no-app`, or name one (zoo2vec {command} ZOO)")
    return root


@main.command("api")
@_zoo_arguments
@click.option("--port", default=8000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 opens the endpoint to every machine that can reach this one.")
def api_(zoo_path, zoo_option, port, host):
    """Start the REST search endpoint on a zoo (JSON in and out; see README, REST endpoint)."""
    from zoo2vec.rest import serve as serve_rest

    root = _existing_zoo(zoo_path, zoo_option, "api")
    click.echo(f"zoo2vec REST endpoint on http://{host}:{port} (Ctrl-C to stop)", err=True)
    serve_rest(root, host=host, port=port)


if __name__ == "__main__":
    main()
