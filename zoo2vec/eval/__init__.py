"""The benchmark: the bench zoo recipe, tasks, measured ground truth, metrics, baselines, the run and its report,
the probe-set study; and what the trainers (zoo2vec.train) are fed from it: the meta-training data."""
