"""Which space text tasks are embedded in, and how many of a query's samples (issue 11, query speed): MiniLM (a forward
pass per sample), MiniLM with int8 weights, or the static encoder distilled from it (zoo/fast_sentence.py), each with
every sample or at most 32 or 16 of them (Task.capped: the classes take turns), chosen by leave-one-domain-out CV.

    ZOO2VEC_HOME=... python bench/text_space_study.py

Reads the bench zoo and its cached ground truth (align.cached: nothing is built or measured). Indexes a linked copy of
the bench zoo per faster space, whose text probe set (text-v2-int8, text-v2-static, text-v2-student) embeds its inputs in that space,
so the text models are probed again; the image side is the same in all. Then, for each row (a space and a cap):
  1. cross-validation, what chooses: the default's design (DEFAULT_OPTION fitted on the plain meta-training tasks;
     with every sample also the untrained score), scored by leave-one-domain-out CV over the meta-training tasks (the
     family's models leave the fold), each with its queries capped the row's way. Rule, fixed before any number (see
     choose()): the fastest row within TOLERANCE of MiniLM with every sample, on the meta-training text tasks that the
     smallest cap changes.
  2. looked at once: the same designs fitted on every meta-training task, on the held-out and new-domain text tasks.
  3. speed: median search time of 100-sample text tasks (one per held-out text dataset), the rows interleaved in
     this process, and the embedding alone.
Writes $ZOO2VEC_HOME/bench/text_space_study.json (everything), bench/TEXT_SPACE.md and the "text_space" entry of
bench/results.json ({row: {"cv", "cv_rule", "held_out", "new_domain", "search_ms_p50", "embed_ms_p50"}}, kept by
`zoo2vec eval`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

import zoo2vec
from zoo2vec import settings
from zoo2vec.data.task import Task
from zoo2vec.encoders import alignment, reference
from zoo2vec.eval import align
from zoo2vec.eval.ground_truth import materialize
from zoo2vec.eval.run import text_tasks
from zoo2vec.eval.study import link_zoo
from zoo2vec.jobs.indexing import run_index
from zoo2vec.zoo.layout import ZooLayout

SPACES = {"MiniLM (minilm-v1)": "text-v2", "MiniLM, int8 weights (minilm-int8-v1)": "text-v2-int8",
          "static, distilled from MiniLM (minilm-static-v1)": "text-v2-static",
          "static, fitted to MiniLM's sentence vectors (minilm-student-v1)": "text-v2-student"}
# how many of a query's samples are embedded (Task.capped; None: all): the transformer spaces' cost is per sample
CAPS = {"MiniLM (minilm-v1)": (None, 32, 16), "MiniLM, int8 weights (minilm-int8-v1)": (None, 32, 16),
        "static, distilled from MiniLM (minilm-static-v1)": (None,),
        "static, fitted to MiniLM's sentence vectors (minilm-student-v1)": (None,)}
DEFAULT = "the default's design (DEFAULT_OPTION, plain meta-training tasks)"
DESIGNS = {align.UNTRAINED_OPTION: align.DESIGNS[align.UNTRAINED_OPTION],
           DEFAULT: align.Design(alignment.FEATURES, blend=0.75, plain_only=True)}
KEYS = ("weighted_tau", "top3", "regret1")
TOLERANCE = {"weighted_tau": 0.01, "regret1": 0.005}
MIN_SAMPLES = 16  # the rule's tasks: meta-training text tasks with more samples than the smallest cap, which every
# capped row changes (a mean over tasks no cap touches would hide what a cap costs)
# what ships, decided on the 2026-12-07 run (revisit when the numbers move): the rule picked int8, which did not become
# the default; the bench zoo and new zoos keep MiniLM (eval.bench_zoo.PROBE_SETS, probe_set.default_for), every sample
SHIPPED = "MiniLM (minilm-v1)"
DECISION = ("What ships: MiniLM with every sample stays the default. The rule picked int8 again (on the rule's tasks "
            "weighted tau 0.587 vs 0.586, regret@1 0.066 vs 0.062), but the held-out and new-domain text tasks, looked "
            "at once, lose 0.017 and 0.024 with it, as on 2026-12-06, and its search is 1.5x faster, not 2x: not worth "
            "a new default, a re-index and a new checkpoint now. No cap passes the rule: 32 samples lose 0.009 weighted "
            "tau and 0.005 regret@1 in CV (0.011 held-out), 16 samples 0.020 and 0.010. New on 2026-12-07: the static "
            "student fitted to MiniLM's sentence vectors (minilm-student-v1) searches in 49 ms, under the 100 ms "
            "target, and recovers most of what the distilled static space lost in CV (weighted tau 0.564 against "
            "static's 0.464 and MiniLM's 0.586), but it is still 0.022 below MiniLM, so the rule does not take it; "
            "looked at once, held-out 0.563 and new-domain 0.493 against MiniLM's 0.686 and 0.574. A user who wants "
            "speed over ranking quality can index with text-v2-student (or text-v2-int8), or search task.capped(32).")


def row_name(space: str, cap: int | None) -> str:
    return space if cap is None else f"{space}, {cap} samples at most"


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def means(per_task: dict, ids: set[str]) -> dict | None:
    rows = [v for t, v in per_task.items() if t in ids]
    return {k: float(np.mean([r[k] for r in rows])) for k in KEYS} | {"tasks": len(rows)} if rows else None


def speed(rows: dict, tasks: list[Task], repeats: int = 3) -> dict:
    """Median ms per search and per embedding of the task's (capped) samples, rows {name: (zoo, cap)} interleaved task
    by task."""
    search = {name: [] for name in rows}
    embed = {name: [] for name in rows}
    encoder = {name: zoo._current_snapshot.get().reference_for("text")[0] for name, (zoo, _) in rows.items()}
    for zoo, _ in rows.values():
        zoo.search(tasks[0], k=5)  # loads each encoder once
    for _ in range(repeats):
        for task in tasks:
            for name, (zoo, cap) in rows.items():
                query = task.capped(cap) if cap else task
                t0 = time.perf_counter()
                zoo.search(query, k=5)
                search[name].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                reference.embed(encoder[name], list(query.samples))
                embed[name].append(time.perf_counter() - t0)
    return {name: {"search_ms_p50": 1000 * float(np.median(search[name])),
                   "embed_ms_p50": 1000 * float(np.median(embed[name])), "searches": len(search[name])}
            for name in rows}


def choose(rows: dict, base: str) -> str:
    """The rule: the fastest row whose domain-CV weighted tau (on the rule's tasks) is at most TOLERANCE below the
    base row's, and whose regret@1 is at most TOLERANCE above it."""
    ref = rows[base]["cv_rule"]
    good = [name for name, e in rows.items()
            if e["cv_rule"]["weighted_tau"] >= ref["weighted_tau"] - TOLERANCE["weighted_tau"]
            and e["cv_rule"]["regret1"] <= ref["regret1"] + TOLERANCE["regret1"]]
    return min(good, key=lambda name: rows[name]["speed"]["search_ms_p50"])


def main() -> None:
    started = time.time()
    root, config, specs, gt = align.cached("bench")
    meta = [s for s in specs if s.meta]
    text = [s for s in specs if s.modality == "text"]
    text_ids = {s.task_id for s in text}
    sizes = {s.task_id: len(materialize(s)[0]) for s in text}
    rule_ids = {s.task_id for s in text if s.meta and sizes[s.task_id] > MIN_SAMPLES}
    allowed = align.meta_training_models(root, config)
    family_map = align.families(config)
    result: dict = {"rule": f"the fastest row whose domain-CV weighted tau ({DEFAULT}; the {len(rule_ids)} meta-training "
                            f"text tasks of more than {MIN_SAMPLES} samples) is at most {TOLERANCE['weighted_tau']} "
                            f"below MiniLM's with every sample, and whose regret@1 is at most {TOLERANCE['regret1']} "
                            "above it", "spaces": {}}
    say(f"image tasks' pair features (the same in every row), {sum(s.modality == 'image' for s in specs)} tasks")
    base_zoo = zoo2vec.open(root, alignment=alignment.UNTRAINED)
    image_feats = {split: align.task_features(base_zoo, [s for s in specs if s.split == split and s.modality == "image"],
                                              say) for split in ("meta", "held_out", "new_domain")}
    rows = {}
    for space, text_set in SPACES.items():
        vroot = root
        if text_set != "text-v2":
            vroot = link_zoo(root, settings.home() / "zoos" / "study" / text_set,
                             {"image": ZooLayout(root).manifest()["probe_sets"]["image"], "text": text_set})
            say(f"{space}: indexing {vroot}")
            say(f"  {run_index(vroot).summary()}")
        zoo = zoo2vec.open(vroot, alignment=alignment.UNTRAINED)
        for cap in CAPS[space]:
            name = row_name(space, cap)
            rows[name] = (zoo, cap)
            designs = DESIGNS if cap is None else {DEFAULT: DESIGNS[DEFAULT]}
            say(f"{name}: pair features of {len(text)} text tasks")
            feats = {split: image_feats[split] | align.task_features(
                zoo, [s for s in text if s.split == split], say, cap=cap) for split in ("meta", "held_out", "new_domain")}
            pairs = align.Pairs(feats["meta"], gt, [s.task_id for s in meta])
            cv = align.cv_scores(pairs, meta, allowed, designs, by="domain", family_map=family_map, progress=say)
            entry = {"space": space, "cap": cap, "cv_domain": {d: means(cv[d], text_ids) for d in designs},
                     "cv_rule": means(cv[DEFAULT], rule_ids), "looked_at": {}}
            for design_name, design in designs.items():
                scorer = design.fitted(pairs, meta, allowed)
                entry["looked_at"][design_name] = {
                    split: align.evaluate(scorer, feats[split], gt, [s.task_id for s in text if s.split == split], KEYS)
                    for split in ("held_out", "new_domain")}
            result["spaces"][name] = entry
            say(f"{name}: {json.dumps(entry)}")
    say("speed: 100-sample text tasks, rows interleaved")
    for name, numbers in speed(rows, text_tasks([s for s in specs if s.held_out])).items():
        result["spaces"][name]["speed"] = numbers
    result["chosen"] = choose(result["spaces"], next(iter(SPACES)))
    result["minutes"] = (time.time() - started) / 60
    print(save("text_space", result, markdown(result), summary(result)))


def save(stem: str, result: dict, text: str, entry: dict, key: str | None = None) -> str:
    """A study's result whole in $ZOO2VEC_HOME/bench/<stem>_study.json, its markdown in bench/<STEM>.md and `entry`
    as results.json's `key` entry (default "<stem>"; kept by `zoo2vec eval`); returns the markdown."""
    out = settings.home() / "bench" / f"{stem}_study.json"
    out.write_text(json.dumps(result, indent=1))
    say(f"wrote {out}")
    here = Path(__file__).parent
    (here / f"{stem.upper()}.md").write_text(text)
    data = json.loads((here / "results.json").read_text())
    data[key or stem] = entry
    (here / "results.json").write_text(json.dumps(data, indent=1) + "\n")
    return text


def summary(result: dict) -> dict:
    """results.json's "text_space" entry: per row, its CV and looked-at weighted tau and its speed."""
    return {"rule": result["rule"], "rule_pick": result["chosen"], "shipped": SHIPPED, **{
        name: {"cv": (e["cv_domain"][DEFAULT] or {}).get("weighted_tau"), "cv_rule": e["cv_rule"],
               **{split: (e["looked_at"][DEFAULT][split] or {}).get("weighted_tau") for split in ("held_out", "new_domain")},
               "search_ms_p50": e["speed"]["search_ms_p50"], "embed_ms_p50": e["speed"]["embed_ms_p50"]}
        for name, e in result["spaces"].items()}}


def _f(x, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def markdown(result: dict) -> str:
    lines = ["# The text reference space and how many samples it embeds (`python bench/text_space_study.py`)",
             "", f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {result['minutes']:.0f} minutes, on the bench "
             "zoo and its cached ground truth. Each faster space is a linked copy of the bench zoo indexed with a text "
             "probe set of the same inputs embedded in that space (text-v2-int8, text-v2-static, text-v2-student); the image side is the "
             "same in all. A cap embeds at most that many of a query's samples, the classes taking turns "
             "(Task.capped), in CV and looked-at tasks alike. Text tasks only. CV (what chooses): leave one domain "
             "family out over the meta-training tasks, the family's models leaving the fold; 'all' is every "
             "meta-training text task, 'rule' the ones the rule reads. Held-out and new-domain: looked at once, after "
             "CV, for every row. Speed: median search of 100-sample text tasks (one per held-out text dataset, 3 "
             "rounds), the rows interleaved in one process; 'embed' is the samples' embedding alone.", "",
             f"**Chosen by the rule: {result['chosen']}** ({result['rule']}).", "", DECISION, "",
             "| space | design | CV all: weighted tau | top-3 | regret@1 | CV rule: weighted tau | regret@1 "
             "| held-out tau | new-domain tau | new-domain top-3 | search ms p50 | embed ms p50 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, entry in result["spaces"].items():
        for design in entry["cv_domain"]:
            cv = entry["cv_domain"][design] or {}
            rule = entry["cv_rule"] if design == DEFAULT else {}
            seen = entry["looked_at"][design]
            held, new = seen["held_out"] or {}, seen["new_domain"] or {}
            sp = entry.get("speed", {})
            mark = " (the rule's pick)" if name == result["chosen"] and design == DEFAULT else ""
            lines.append(f"| {name}{mark} | {design} | {_f(cv.get('weighted_tau'))} | {_f(cv.get('top3'), 2)} | "
                         f"{_f(cv.get('regret1'))} | {_f(rule.get('weighted_tau'))} | {_f(rule.get('regret1'))} | "
                         f"{_f(held.get('weighted_tau'))} | {_f(new.get('weighted_tau'))} | "
                         f"{_f(new.get('top3'), 2)} | {_f(sp.get('search_ms_p50'), 0)} | {_f(sp.get('embed_ms_p50'), 1)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
