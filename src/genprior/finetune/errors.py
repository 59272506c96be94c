"""The errors of the finetuning part, each a subclass of genprior's own and a built-in."""

from genprior.errors import CheckpointError, DatasetNotFoundError, GenpriorError

__all__ = [
    "ChatDataError",
    "CheckpointError",
    "ContextLengthError",
    "JudgeError",
    "MissingExtraError",
    "ModelNotFoundError",
]


class ChatDataError(GenpriorError, ValueError):
    """A chat JSONL file or row is malformed; the message names the file and line."""


class ContextLengthError(GenpriorError, ValueError):
    """A tokenised example or prompt is longer than the model's context."""


class ModelNotFoundError(DatasetNotFoundError):
    """A model file or folder is missing; the message says how to get it."""


class JudgeError(GenpriorError, RuntimeError):
    """A judge could not score an answer (unreachable or misbehaving endpoint, bad reply)."""


class MissingExtraError(GenpriorError, ImportError):
    """transformers or peft is missing; install the ``llm`` extra."""
