"""Datasets and the user's Task."""

from zoo2vec.data.task import Task

__all__ = ["Task"]
