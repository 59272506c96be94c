"""Every exception and warning that genprior raises on purpose.

Each class subclasses the nearest built-in, so callers may catch ``ValueError`` or
``TypeError`` as usual, or one of ours for precision.
"""


class GenpriorError(Exception):
    """Base class of all genprior errors."""


class ShapeError(GenpriorError, ValueError):
    """A tensor does not have the shape an operator, prior or solver expects."""


class NonFiniteError(GenpriorError, ValueError):
    """An input or a result holds NaN or infinite values."""


class OptionError(GenpriorError, ValueError):
    """An option (dataset, method, task, operator name...) is not one of the known choices."""


class DatasetNotFoundError(GenpriorError, FileNotFoundError):
    """A dataset is not available locally; the message says how to get it."""


class ChecksumError(GenpriorError, ValueError):
    """A file's content does not match its expected checksum."""


class CheckpointError(GenpriorError, ValueError):
    """A checkpoint is missing, truncated, corrupt, or does not match the requested model."""


class ConvergenceWarning(UserWarning):
    """An iterative method stopped before meeting its tolerance."""


def check_choice(name: str, value: object, choices: "list[str] | tuple[str, ...]") -> None:
    """Raise :class:`OptionError` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise OptionError(
            f"{name} must be one of {', '.join(map(str, choices))}; received {value!r}"
        )
