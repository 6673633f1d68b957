"""Every error zoo2vec raises on purpose.

    Zoo2VecError
    ├── ConfigError          a setting, path or name that does not resolve
    ├── MissingExtraError    an optional dependency is not installed
    ├── ZooError             a zoo or a model folder that cannot be used
    │   ├── UntrustedCheckpointError   a pickled checkpoint without trust_pickle=True
    │   ├── SkippedModel     a model zoo2vec does not index (not a classifier): listed, not failed
    │   └── ModelFailure     a model that raised, hung, or answered badly
    ├── TaskError            a task that cannot be searched with (empty, one class, unreadable)
    │   └── TaskLimitError   a task input over one of the limits (samples, bytes, pixels...; settings.LIMITS)
    ├── FilterError          a filter field or value that is not understood
    └── IndexNotBuiltError   a zoo with no index snapshot yet

Each message names the bad value and what to do about it.
"""

from __future__ import annotations


class Zoo2VecError(Exception):
    """Base class of every zoo2vec error."""


class ConfigError(Zoo2VecError):
    """A setting, path or registry name that does not resolve."""


class MissingExtraError(Zoo2VecError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


class ZooError(Zoo2VecError):
    """A zoo or model folder that cannot be read or used."""


class UntrustedCheckpointError(ZooError):
    """A pickled checkpoint, refused because pickles can run arbitrary code."""


class SkippedModel(ZooError):
    """A model that is not one zoo2vec indexes (e.g. a Hugging Face model without a classification head)."""


class ModelFailure(ZooError):
    """A model that raised, timed out, or returned malformed output."""

    def __init__(self, model: str, reason: str):
        super().__init__(f"model {model!r} failed: {reason}")
        self.model = model
        self.reason = reason


class TaskError(Zoo2VecError):
    """A task that cannot be used for search."""


class TaskLimitError(TaskError):
    """A task input over a limit; names the limit, what was found, and the setting that raises it."""

    def __init__(self, where: str, found: str, what: str, limit: int, setting: str):
        super().__init__(f"{where}: {found} is over the limit of {limit:,} {what}; "
                         f"raise it with the setting {setting}=N")
        self.found = found
        self.limit = limit
        self.setting = setting


class FilterError(Zoo2VecError):
    """A filter with an unknown field, operator or a badly typed value."""


class IndexNotBuiltError(Zoo2VecError):
    """The zoo has not been indexed yet."""


def require(module: str, extra: str):
    """Import an optional dependency or raise MissingExtraError naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{module!r} is not available - install the {extra!r} extra: pip install 'zoo2vec[{extra}]'"
        ) from exc
