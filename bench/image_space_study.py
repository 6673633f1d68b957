"""Which space image tasks are compared in (issue 11, part 2: colour): the grey pixels + HOG space on grey probes (the
bench zoo's until now), or that space with a colour block (image_features.colour) and colour probes, chosen by
leave-one-domain-out CV.

    ZOO2VEC_HOME=... python bench/image_space_study.py

Reads the bench zoo and its cached ground truth (align.cached: nothing is built or measured). Indexes a linked copy of
the bench zoo per candidate image probe set (image-v3-synth: recoloured digits and colour blobs, made from nothing
the tasks hold; image-v3-gtsrb: GTSRB signs from the half the zoo's models train on; image-v3: both), so the image
models are probed again; the text side is the same in all. Then, for each space:
  1. cross-validation, what chooses: the untrained score and the packaged default's design (align-3's: learned with
     surrogate transferability, blended 1:3 with the untrained score, fitted on the plain meta-training tasks), each
     scored by leave-one-domain-out CV over every meta-training task (the family's models leave the fold); the mean
     over the image tasks. Rule, fixed before any number: the space with the best domain-CV weighted tau of that
     design on image tasks; a space whose probes draw from GTSRB sees the traffic-sign family's inputs even in that
     family's fold (not its tasks' samples, but its signs), so it is chosen only if it is also best on the other
     families' image tasks.
  2. looked at once: the same designs fitted on every meta-training task, on the held-out and new-domain image tasks.
Writes $ZOO2VEC_HOME/bench/image_space_study.json (everything), bench/IMAGE_SPACE.md and the "image_space" entry of
bench/results.json ({space: {"cv", "cv_without_signs", "held_out", "new_domain"}}, kept by `zoo2vec eval`).
"""

from __future__ import annotations

import json
import time

from text_space_study import DEFAULT, DESIGNS, KEYS, _f, means, save, say

import zoo2vec
from zoo2vec import settings
from zoo2vec.encoders import alignment, probe_set
from zoo2vec.eval import align
from zoo2vec.eval.study import link_zoo
from zoo2vec.jobs.indexing import run_index
from zoo2vec.zoo.layout import ZooLayout

SPACES = {"pixels + HOG, grey probes (image-v1-pixels-hog)": "image-v1-pixels-hog",
          "+ colour block, synthetic colour probes (image-v3-synth)": "image-v3-synth",
          "+ colour block, GTSRB probes (image-v3-gtsrb)": "image-v3-gtsrb",
          "+ colour block, both (image-v3)": "image-v3"}
SIGNS = "traffic signs"  # the family whose inputs a GTSRB-drawing probe set holds


def family_means(per_task: dict, specs, family_map) -> dict:
    out = {}
    for family in sorted({align.family_of(s.dataset, family_map) for s in specs}):
        ids = {s.task_id for s in specs if align.family_of(s.dataset, family_map) == family}
        out[family] = means(per_task, ids)
    return out


def choose(spaces: dict) -> str:
    """The rule: best mean over the image tasks; one drawing GTSRB probes only if also best without the sign family."""
    ranked = sorted(spaces, key=lambda s: -spaces[s]["cv"][DEFAULT]["all"]["weighted_tau"])
    without = max(spaces, key=lambda s: spaces[s]["cv"][DEFAULT]["without_signs"]["weighted_tau"])
    for space in ranked:
        if not spaces[space]["draws_signs"] or space == without:
            return space
    return ranked[0]


def main() -> None:
    started = time.time()
    root, config, specs, gt = align.cached("bench")
    meta = [s for s in specs if s.meta]
    image = [s for s in specs if s.modality == "image"]
    image_meta = [s for s in meta if s.modality == "image"]
    family_map = align.families(config)
    signs = {s.task_id for s in image_meta if align.family_of(s.dataset, family_map) == SIGNS}
    allowed = align.meta_training_models(root, config)
    text_set = ZooLayout(root).manifest()["probe_sets"]["text"]
    result: dict = {"rule": f"the best domain-CV weighted tau of {DEFAULT} on the meta-training image tasks; a space "
                            "whose probes draw from GTSRB only if it is also best without the traffic-sign family",
                    "spaces": {}}
    for space, image_set in SPACES.items():
        vroot = root if image_set == ZooLayout(root).manifest()["probe_sets"]["image"] else link_zoo(
            root, settings.home() / "zoos" / "study" / image_set, {"image": image_set, "text": text_set})
        if vroot != root:
            say(f"{space}: indexing {vroot}")
            say(f"  {run_index(vroot).summary()}")
        zoo = zoo2vec.open(vroot, alignment=alignment.UNTRAINED)
        say(f"{space}: pair features of {len(specs)} tasks")
        feats = {split: align.task_features(zoo, [s for s in specs if s.split == split], say)
                 for split in ("meta", "held_out", "new_domain")}
        pairs = align.Pairs(feats["meta"], gt, [s.task_id for s in meta])
        cv = align.cv_scores(pairs, meta, allowed, DESIGNS, by="domain", family_map=family_map, progress=say)
        ids = {s.task_id for s in image_meta}
        entry = {"probe_set": image_set, "draws_signs": "gtsrb" in probe_set.datasets_of(image_set),
                 "cv": {d: {"all": means(cv[d], ids), "without_signs": means(cv[d], ids - signs),
                            "by_family": family_means(cv[d], image_meta, family_map)} for d in DESIGNS},
                 "looked_at": {}}
        for name, design in DESIGNS.items():
            scorer = design.fitted(pairs, meta, allowed)
            entry["looked_at"][name] = {}
            for split in ("held_out", "new_domain"):
                split_specs = [s for s in image if s.split == split]
                entry["looked_at"][name][split] = {
                    "all": align.evaluate(scorer, feats[split], gt, [s.task_id for s in split_specs], KEYS),
                    **{d: align.evaluate(scorer, feats[split], gt, [s.task_id for s in split_specs if s.dataset == d],
                                         KEYS) for d in sorted({s.dataset for s in split_specs})}}
        result["spaces"][space] = entry
        say(f"{space}: {json.dumps(entry)}")
    result["chosen"] = choose(result["spaces"])
    result["minutes"] = (time.time() - started) / 60
    print(save("image_space", result, markdown(result), summary(result)))


def summary(result: dict) -> dict:
    """results.json's "image_space" entry: per space, its CV and looked-at weighted tau."""
    return {"rule": result["rule"], "chosen": result["chosen"], **{
        space: {"probe_set": e["probe_set"], "cv": e["cv"][DEFAULT]["all"]["weighted_tau"],
                "cv_without_signs": e["cv"][DEFAULT]["without_signs"]["weighted_tau"],
                **{split: (e["looked_at"][DEFAULT][split]["all"] or {}).get("weighted_tau")
                   for split in ("held_out", "new_domain")}}
        for space, e in result["spaces"].items()}}


def markdown(result: dict) -> str:
    spaces = result["spaces"]
    lines = ["# The image reference space: grey, or with colour (`python bench/image_space_study.py`)", "",
             (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {result['minutes']:.0f} minutes, on the bench "
             "zoo and its cached ground truth. Each colour space is a linked copy of the bench zoo indexed with another "
             "image probe set: image-v1's 512 grey inputs plus colour ones, embedded by pixels-hog-colour-v1 (pixels + "
             "HOG + where the colour is); the text side is the same in all. Image tasks only. CV (what chooses): leave "
             "one domain family out over every meta-training task, the family's models leaving the fold. Held-out "
             "and new-domain: looked at once, after CV, for every row."), "",
             f"**Chosen: {result['chosen']}** ({result['rule']}).", "",
             ("| space | design | CV by domain: weighted tau | top-3 | regret@1 | CV without traffic signs | "
             "held-out tau | held-out top-3 | new-domain tau | new-domain top-3 |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for space, entry in spaces.items():
        for design in DESIGNS:
            cv = entry["cv"][design]["all"] or {}
            without = entry["cv"][design]["without_signs"] or {}
            held = entry["looked_at"][design]["held_out"]["all"] or {}
            new = entry["looked_at"][design]["new_domain"]["all"] or {}
            mark = " **(chosen)**" if space == result["chosen"] and design == DEFAULT else ""
            lines.append(f"| {space}{mark} | {design} | {_f(cv.get('weighted_tau'))} | {_f(cv.get('top3'), 2)} | "
                         f"{_f(cv.get('regret1'))} | {_f(without.get('weighted_tau'))} | "
                         f"{_f(held.get('weighted_tau'))} | {_f(held.get('top3'), 2)} | "
                         f"{_f(new.get('weighted_tau'))} | {_f(new.get('top3'), 2)} |")
    families = sorted(next(iter(spaces.values()))["cv"][DEFAULT]["by_family"])
    lines += ["", (f"Leave-one-domain-out weighted tau of {DEFAULT} by image family (traffic signs: optimistic for a "
              "space whose probes hold GTSRB signs):"), "", "| space | " + " | ".join(families) + " |",
              "|---|" + "---|" * len(families)]
    for space, entry in spaces.items():
        by = entry["cv"][DEFAULT]["by_family"]
        lines.append(f"| {space} | " + " | ".join(_f((by[f] or {}).get("weighted_tau")) for f in families) + " |")
    datasets = [d for d in next(iter(spaces.values()))["looked_at"][DEFAULT]["held_out"] if d != "all"] + \
               [d for d in next(iter(spaces.values()))["looked_at"][DEFAULT]["new_domain"] if d != "all"]
    lines += ["", f"Looked at once: weighted tau of {DEFAULT} by held-out and new-domain image dataset:", "",
              "| space | " + " | ".join(datasets) + " |", "|---|" + "---|" * len(datasets)]
    for space, entry in spaces.items():
        seen = {**entry["looked_at"][DEFAULT]["held_out"], **entry["looked_at"][DEFAULT]["new_domain"]}
        lines.append(f"| {space} | " + " | ".join(_f((seen[d] or {}).get("weighted_tau")) for d in datasets) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
