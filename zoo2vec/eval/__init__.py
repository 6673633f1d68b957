"""The benchmark: tasks, measured ground truth, metrics, baselines and reports."""
