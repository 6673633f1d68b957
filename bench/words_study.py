"""The words scorer's design and its weight against the task score (issue 11's protocol, for text queries), chosen by
leave-one-domain-out CV over the meta-training tasks' sentences.

    ZOO2VEC_HOME=... python bench/words_study.py

Reads the bench zoo and its cached ground truth (align.cached). Each meta-training task becomes its sentence
(text_queries.query_text: what the user asks in their own words, and the classes); the words features come from the
search path users run (zoo.search(text=...)), once, since they do not depend on the scorer.

  1. the words scorer, alone (a sentence, no samples): each option fitted on the other domain families' tasks over
     the other families' models, scoring the fold's tasks among the models left (train-words' recipe is "learned,
     l2=0.001"). Rule, fixed before any number: the highest mean weighted tau; hit@3 is reported.
  2. the fusion weight, sentence and samples together: (1 - w) of the task score plus w of the words score, both
     out of fold (the task score by the default's design, as verify_study's), over the fold's models of the task's
     modality. Rule (fixed on 2026-12-07 before its numbers, after the one before, the highest mean weighted
     tau alone, had left the bad-card target unmet on the held-out split): the w in WEIGHTS with the highest mean
     weighted tau among those that meet the text-query target out of fold, bad-card hit@3 (over the fold's bad-card
     models of the task's modality) at least TARGET above the card similarity's over the same models; where no w
     meets it, the w with the highest bad-card hit@3.
     The CV pick is set against the packaged design (text_queries.WORDS_DESIGN): the paired difference and its
     bootstrap interval over tasks.
  3. looked at once, after both choices: the held-out and the new-domain tasks' sentences, the chosen scorer fitted on
     every meta-training task (meta-training models only, as train-words does), fused with the served task score at
     the chosen w; and the packaged words scorer with its weight the same way, for comparison (on 2026-12-07 that was
     words-1, fitted on bench-1 with w = 0.5 chosen in-sample; the chosen design became words-2 after that run).
Writes $ZOO2VEC_HOME/bench/words_study.json (everything), bench/WORDS.md and results.json's "words_study" entry (kept
by `zoo2vec eval`). `python bench/words_study.py --publish` writes the last two again from the first.
"""

from __future__ import annotations

import time

import numpy as np

import zoo2vec
from zoo2vec.encoders import alignment
from zoo2vec.eval import align
from zoo2vec.eval.metrics import all_metrics
from zoo2vec.eval.tasks import materialize
from zoo2vec.eval.text_queries import (ASK, WORDS_DESIGN, bad_card_models, hit_at, word_groups, word_results,
                                       word_rows)
from zoo2vec.train.alignment import fit

from text_space_study import DEFAULT, DESIGNS, save, say

UNTRAINED = "untrained (the card's similarity)"
LEARNED = "learned, l2=0.001 (words-1's recipe)"
OPTIONS: dict[str, dict] = {
    UNTRAINED: {},
    LEARNED: {"features": alignment.WORD_FEATURES, "l2": 1e-3},
    **{f"learned, l2={l2:g}": {"features": alignment.WORD_FEATURES, "l2": l2} for l2 in (0.1, 1.0)},
    **{f"learned without {name}": {"features": tuple(f for f in alignment.WORD_FEATURES if f not in dropped), "l2": 1e-3}
       for name, dropped in alignment.WORD_COMPONENTS.items()},
}
WEIGHTS = tuple(round(w, 1) for w in np.linspace(0.0, 1.0, 11))
KEYS = ("weighted_tau", "top3", "regret1")
TARGET = 0.15  # bad-card hit@3 above card similarity's (the text-query benchmark's target)


def fitted(option: str, rows: dict, gt, task_ids, models) -> alignment.Alignment:
    recipe = OPTIONS[option]
    if not recipe:
        return alignment.load(alignment.UNTRAINED, words=True)
    features = recipe["features"]
    data = [(x, y) for x, y in word_groups(rows, gt, task_ids, models, features) if len(y) > 1]
    return fit(data, features=features, l2=recipe["l2"], version=option)


def words_scores(scorer: alignment.Alignment, rows: dict, task_id: str, models) -> dict[str, float]:
    keep = [m for m in rows[task_id] if m in models]
    return dict(zip(keep, scorer.score([rows[task_id][m] for m in keep]))) if keep else {}


def metrics(scores: dict[str, float], accuracy: dict[str, float], pool, bad=frozenset()) -> dict | None:
    """Ranking metrics over the models of `pool` with a score (a model not measured on the task counts as 0), and
    hit@3 as the text-query benchmark counts it, over them and over those of them in `bad` (None: none measured)."""
    names = [m for m in scores if m in pool]
    if len(names) < 2:
        return None
    out = all_metrics(np.asarray([accuracy.get(m, 0.0) for m in names]), np.asarray([scores[m] for m in names]))
    return {k: out[k] for k in KEYS} | {"hit3": hit_at(scores, accuracy, set(names)),
                                        "hit3_bad": hit_at(scores, accuracy, set(names) & bad)}


def mean(per_task: dict) -> dict | None:
    rows = [v for v in per_task.values() if v is not None]
    if not rows:
        return None
    bad = [r["hit3_bad"] for r in rows if r.get("hit3_bad") is not None]
    return ({k: float(np.mean([r[k] for r in rows])) for k in (*KEYS, "hit3")} | {"tasks": len(rows)}
            | {"hit3_bad": float(np.mean(bad)) if bad else None, "tasks_bad": len(bad)})


def pick_weight(by_w: dict, card: dict) -> float:
    """The fusion rule: the highest weighted tau among the weights meeting the bad-card target against the card
    similarity's bad-card hit@3 (`card`), else the highest bad-card hit@3."""
    meets = [w for w in WEIGHTS if by_w[str(w)]["hit3_bad"] >= card["hit3_bad"] + TARGET]
    if meets:
        return max(meets, key=lambda w: by_w[str(w)]["weighted_tau"])
    return max(WEIGHTS, key=lambda w: by_w[str(w)]["hit3_bad"])


def fuse(task: dict[str, float], words: dict[str, float], w: float) -> dict[str, float]:
    return {m: (1 - w) * s + w * words[m] for m, s in task.items() if m in words}


def cross_validate(by: str, meta, rows, gt, truth, allowed, family_map, features, bad) -> dict:
    """Out-of-fold words scores of every option and task scores of the default's design, and the words' metrics:
    by="domain", a fold is a domain family and its models leave it; by="dataset", a fold is a dataset, every model
    stays (as the held-out split's models do)."""
    fold_of = {s.task_id: align.family_of(s.dataset, family_map) if by == "domain" else s.dataset for s in meta}
    task_oof: dict = {}
    align.cv_scores(align.Pairs(features, gt, [s.task_id for s in meta]), meta, allowed, {DEFAULT: DESIGNS[DEFAULT]},
                    by=by, family_map=family_map, scored=task_oof)
    cv = {option: {} for option in OPTIONS}
    words_oof = {option: {} for option in OPTIONS}
    for fold in sorted(set(fold_of.values())):
        models = set(allowed) if by == "dataset" else {m for m, d in allowed.items()
                                                       if align.family_of(d, family_map) != fold}
        train_ids = [t for t, f in fold_of.items() if f != fold]
        for option in OPTIONS:
            scorer = fitted(option, rows, gt, train_ids, models)
            for task_id in (t for t, f in fold_of.items() if f == fold):
                words_oof[option][task_id] = words_scores(scorer, rows, task_id, models)
                cv[option][task_id] = metrics(words_oof[option][task_id], truth[task_id], models, bad)
    say(f"cv by {by}: {len(set(fold_of.values()))} folds done")
    return {"words": {option: mean(per_task) for option, per_task in cv.items()}, "per_task": cv, "words_oof": words_oof,
            "task_oof": task_oof[DEFAULT]}


def incumbent() -> str:
    """The option the packaged words scorer was fitted with (text_queries.WORDS_DESIGN)."""
    return next(o for o, r in OPTIONS.items() if r and r["features"] == WORDS_DESIGN["features"]
                and r["l2"] == WORDS_DESIGN["l2"])


def paired_interval(per_task: dict, a: str, b: str, draws: int = 2000, seed: int = 0) -> list[float]:
    """95% bootstrap interval (tasks resampled) of the mean per-task weighted tau of option a minus option b. Tasks of
    one fold share a fitted scorer, so this is narrower than the truth, not wider."""
    tasks = [t for t in per_task[a] if per_task[a][t] is not None and per_task[b][t] is not None]
    diff = np.asarray([per_task[a][t]["weighted_tau"] - per_task[b][t]["weighted_tau"] for t in tasks])
    means = np.random.default_rng(seed).choice(diff, size=(draws, len(diff))).mean(axis=1)
    return [float(diff.mean()), *np.quantile(means, [0.025, 0.975]).tolist()]


def fused_cv(found: dict, option: str, truth, bad) -> dict:
    task_oof, words_oof = found["task_oof"], found["words_oof"][option]
    return {str(w): mean({t: metrics(fuse(task_oof[t], words_oof[t], w), truth[t], task_oof[t], bad)
                          for t in task_oof}) for w in WEIGHTS}


def card_cv(found: dict, rows: dict, truth, bad) -> dict:
    """The card similarity alone over the models the fused score ranks (the target's baseline)."""
    return mean({t: metrics({m: rows[t][m]["card"] for m in scores if m in rows[t]}, truth[t], scores, bad)
                 for t, scores in found["task_oof"].items()})


def main() -> None:
    started = time.time()
    root, config, specs, gt = align.cached("bench")
    meta = [s for s in specs if s.meta and s.dataset in ASK]
    looked = {split: [s for s in specs if s.split == split and s.dataset in ASK] for split in ("held_out", "new_domain")}
    allowed = align.meta_training_models(root, config)
    family_map = align.families(config)
    truth = {t: rows.set_index("model")["accuracy"].to_dict() for t, rows in gt.groupby("task_id")}
    bad = bad_card_models(root)
    say(f"words features of {len(meta)} meta-training sentences and {sum(map(len, looked.values()))} looked-at ones")
    plain = zoo2vec.open(root, alignment=alignment.UNTRAINED, words=alignment.UNTRAINED)
    rows = word_rows(word_results(plain, meta + looked["held_out"] + looked["new_domain"]))
    features = align.task_features(plain, meta, say)
    cv = {by: cross_validate(by, meta, rows, gt, truth, allowed, family_map, features, bad)
          for by in ("domain", "dataset")}
    result: dict = {"rule": "words scorer: the option with the highest leave-one-domain-out mean weighted tau, the "
                            "sentence alone; fusion weight: of (1 - w) task score + w words score, both out of fold, "
                            "the w with the highest such tau among those whose bad-card hit@3 is at least "
                            f"{TARGET:g} above the card similarity's (else the highest bad-card hit@3); leave one "
                            "dataset out: reported, not chosen on",
                    "tasks": {"meta": len(meta), **{split: len(tasks) for split, tasks in looked.items()}},
                    "words_cv": cv["domain"]["words"], "words_cv_dataset": cv["dataset"]["words"]}
    chosen = max(OPTIONS, key=lambda o: result["words_cv"][o]["weighted_tau"])
    result["chosen"] = chosen
    result["incumbent"] = incumbent()
    result["chosen_minus_incumbent"] = paired_interval(cv["domain"]["per_task"], chosen, result["incumbent"])
    say(f"CV chose the words scorer {chosen!r}")
    options = dict.fromkeys((chosen, result["incumbent"], LEARNED))
    result["fusion_cv"] = {option: fused_cv(cv["domain"], option, truth, bad) for option in options}
    result["fusion_cv_dataset"] = {option: fused_cv(cv["dataset"], option, truth, bad) for option in options}
    result["card_cv"] = {by: card_cv(cv[by], rows, truth, bad) for by in ("domain", "dataset")}
    weight = pick_weight(result["fusion_cv"][chosen], result["card_cv"]["domain"])
    result["weight_incumbent"] = pick_weight(result["fusion_cv"][result["incumbent"]], result["card_cv"]["domain"])
    result["weight"] = weight
    say(f"CV chose the fusion weight {weight}")

    served = zoo2vec.open(root)
    everyone = set(served.models()["name"])
    scorers = {f"{chosen} (chosen), w={weight}": (fitted(chosen, rows, gt, [s.task_id for s in meta], set(allowed)),
                                                  weight),
               f"{served.words.version} (packaged), w={served.words_weight}": (served.words, served.words_weight)}
    for split, tasks in looked.items():
        say(f"looked at once: the {split} sentences")
        task_served = {s.task_id: {r.name: r.score for r in served.search(materialize(s)[0], k=len(everyone))}
                       for s in tasks}
        result[split] = {}
        for name, (scorer, w) in scorers.items():
            alone = {s.task_id: words_scores(scorer, rows, s.task_id, everyone) for s in tasks}
            result[split][name] = {
                "words": mean({t: metrics(alone[t], truth[t], everyone, bad) for t in alone}),
                "with_samples": mean({t: metrics(fuse(task_served[t], alone[t], w), truth[t], task_served[t], bad)
                                      for t in alone})}
            say(f"{split}, {name}: {result[split][name]}")
    result["minutes"] = (time.time() - started) / 60
    publish(result)


def publish(result: dict) -> None:
    print(save("words", result, markdown(result), summary(result), key="words_study"))


# what ships, decided on the 2026-12-07 17:50 run (revisit when the numbers move)
DECISION = ("What ships: words-2 (learned without prior, w = 0.2), unchanged. With gtsrb's sentence added (64 "
            "sentences, not 60), domain CV now ranks 'learned without decisions' first, by +0.014 weighted tau, a "
            "difference whose interval over tasks spans zero; a new checkpoint is made when CV's gain is clear of zero "
            "(a rule stated after this run, its looked-at numbers seen: it binds the runs after, and this decision "
            "is not a clean one). The looked-at splits, seen once, do not favour the CV pick either (held-out with samples 0.640 against 0.657, "
            "new-domain 0.548 against 0.554). The bad-card rule changes no weight: with samples, out of fold, every w "
            "is at least 0.45 above the card similarity's bad-card hit@3 (0.375), the samples alone (w = 0) reach "
            "0.859, and more words weight does not raise it (words-2's design: 0.844 at w = 0.2, 0.875 at 0.4). On "
            "the held-out split the same measure is 0.68 at w = 0.2, below the benchmark's target (card MiniLM + "
            "0.15): CV and the held-out split disagree on bad cards, and CV gives no weight that would close it.")


def summary(result: dict) -> dict:
    return {"rule": result["rule"], "chosen": result["chosen"], "weight": result["weight"],
            "cv": {o: v["weighted_tau"] for o, v in result["words_cv"].items()},
            "cv_dataset": {o: v["weighted_tau"] for o, v in result["words_cv_dataset"].items()},
            "fusion_cv": {w: v["weighted_tau"] for w, v in result["fusion_cv"][result["chosen"]].items()},
            "fusion_cv_bad_cards": {w: v["hit3_bad"] for w, v in result["fusion_cv"][result["chosen"]].items()},
            "card_cv_bad_cards": result["card_cv"]["domain"]["hit3_bad"],
            "held_out": result["held_out"], "new_domain": result["new_domain"]}


def _f(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def markdown(result: dict) -> str:
    lines = ["# The words scorer and its weight against the samples (`python bench/words_study.py`)", "",
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {result['minutes']:.0f} minutes, on the bench "
             f"zoo's cached ground truth: {result['tasks']['meta']} meta-training sentences (CV: leave one domain "
             f"family out, the family's models leave the fold; or leave one dataset out, every model stays), then "
             f"{result['tasks']['held_out']} held-out and {result['tasks']['new_domain']} new-domain ones, looked at "
             "once after CV had chosen. A sentence is text_queries.ASK's wording of the task and its classes. 'words': "
             "the sentence alone, over every model (one measured on another modality counts as 0); 'with samples': "
             "the sentence and the task's samples, over the task's modality.", "",
             f"Rule: {result['rule']}.", "",
             f"**CV chose: {result['chosen']}, fusion weight w = {result['weight']}.**", "",
             "Against the packaged design ({}, by the same rule w = {}): domain-CV weighted tau {:+.3f}, 95% "
             "interval over tasks [{:+.3f}, {:+.3f}].".format(result["incumbent"], result["weight_incumbent"],
                                                            *result["chosen_minus_incumbent"]), "", DECISION, "",
             "## The sentence alone, by CV (leave one domain out: chooses; leave one dataset out: reported)", "",
             "| option | domain: weighted tau | top-3 | regret@1 | hit@3 | dataset: weighted tau | hit@3 | tasks |",
             "|---|---|---|---|---|---|---|---|"]
    for option, v in result["words_cv"].items():
        d = result["words_cv_dataset"][option]
        lines.append(f"| {option} | {_f(v['weighted_tau'])} | {_f(v['top3'])} | {_f(v['regret1'])} | "
                     f"{_f(v['hit3'])} | {_f(d['weighted_tau'])} | {_f(d['hit3'])} | {v['tasks']} |")
    lines += ["", "## Sentence and samples, by CV: weighted tau of (1 - w) task score + w words score", "",
              "| words scorer | CV | " + " | ".join(f"w={w}" for w in WEIGHTS) + " |", "|" + "---|" * (len(WEIGHTS) + 2)]
    for by, key in (("domain", "fusion_cv"), ("dataset", "fusion_cv_dataset")):
        for option, by_w in result[key].items():
            lines.append(f"| {option} | {by} | " + " | ".join(_f(by_w[str(w)]["weighted_tau"]) for w in WEIGHTS) + " |")
    card = result["card_cv"]
    lines += ["", "Bad-card hit@3 of the same fused scores, over the fold's bad-card models of the task's modality "
              f"(the card similarity alone: {_f(card['domain']['hit3_bad'])} by domain, "
              f"{_f(card['dataset']['hit3_bad'])} by dataset; the target is {TARGET:g} above it; "
              f"{card['domain']['tasks_bad']} tasks):", "",
              "| words scorer | CV | " + " | ".join(f"w={w}" for w in WEIGHTS) + " |", "|" + "---|" * (len(WEIGHTS) + 2)]
    for by, key in (("domain", "fusion_cv"), ("dataset", "fusion_cv_dataset")):
        for option, by_w in result[key].items():
            lines.append(f"| {option} | {by} | " + " | ".join(_f(by_w[str(w)]["hit3_bad"]) for w in WEIGHTS) + " |")
    for split, title in (("held_out", "Held-out sentences"), ("new_domain", "New-domain sentences")):
        lines += ["", f"## {title}, looked at once", "",
                  "| scorer | words: weighted tau | hit@3 | hit@3 bad cards | with samples: weighted tau | hit@3 | "
                  "hit@3 bad cards | tasks |", "|---|---|---|---|---|---|---|---|"]
        for name, v in result[split].items():
            words, both = v["words"], v["with_samples"]
            lines.append(f"| {name} | {_f(words['weighted_tau'])} | {_f(words['hit3'])} | {_f(words['hit3_bad'])} | "
                         f"{_f(both['weighted_tau'])} | {_f(both['hit3'])} | {_f(both['hit3_bad'])} | "
                         f"{words['tasks']} |")
    return "\n".join(lines + [""])


if __name__ == "__main__":
    import json
    import sys

    from zoo2vec import settings

    if sys.argv[1:] == ["--publish"]:
        publish(json.loads((settings.home() / "bench" / "words_study.json").read_text()))
    else:
        main()
