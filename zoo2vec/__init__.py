"""zoo2vec: find the right model in a model zoo for your task, from black-box probing alone.

    zoo = zoo2vec.open("path/to/zoo")
    zoo.search(task=zoo2vec.Task.from_path("task.zip"), k=5).to_pandas()
    zoo.search(text="handwritten digit recognition")
"""

from zoo2vec.api import Zoo, open
from zoo2vec.data.task import Task
from zoo2vec.errors import (
    ConfigError,
    FilterError,
    IndexNotBuiltError,
    MissingExtraError,
    ModelFailure,
    TaskError,
    UntrustedCheckpointError,
    Zoo2VecError,
    ZooError,
)
from zoo2vec.search.results import SearchResult, SearchResults
from zoo2vec.zoo.card import ModelCard

__version__ = "0.1.0"
__all__ = [
    "ConfigError", "FilterError", "IndexNotBuiltError", "MissingExtraError", "ModelCard", "ModelFailure",
    "SearchResult", "SearchResults", "Task", "TaskError", "UntrustedCheckpointError", "Zoo", "Zoo2VecError",
    "ZooError", "open",
]
