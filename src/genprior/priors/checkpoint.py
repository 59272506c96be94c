"""Checkpoints: a folder with ``model.safetensors`` (weights) and ``config.json``.

``config.json`` holds the model type and architecture, the data fingerprint, the training
settings and the command line that produced the weights. Loading checks all of it against
the weights and raises :class:`CheckpointError` with the reason when anything disagrees.
"""

import json
import logging
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from genprior.errors import CheckpointError, check_choice
from genprior.io import write_bytes_atomic, write_json_atomic
from genprior.priors.base import Generator
from genprior.priors.vae import VAE, VAEConfig

logger = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
SHIPPED_ROOT = Path(__file__).resolve().parents[1] / "checkpoints"
SHIPPED = {"mnist-vae": SHIPPED_ROOT / "mnist-vae"}

# model type -> (class, config class); each config class has to_dict/from_dict.
MODEL_TYPES = {"vae": (VAE, VAEConfig)}


def model_type_of(model: Generator) -> str:
    """The registry name of ``model``'s class."""
    for name, (cls, _) in MODEL_TYPES.items():
        if type(model) is cls:
            return name
    raise TypeError(f"no checkpoint format for {type(model).__name__}")


def save_tensors_atomic(
    tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None
) -> Path:
    """Write tensors (and string metadata) as safetensors to ``path`` atomically."""
    contiguous = {key: value.detach().contiguous().cpu() for key, value in tensors.items()}
    return write_bytes_atomic(path, save(contiguous, metadata=metadata))


def save_checkpoint(model: Generator, folder: str | Path, meta: dict | None = None) -> Path:
    """Save ``model``'s weights and config (plus ``meta``) into ``folder``; return it."""
    folder = Path(folder)
    config = {
        "model": model_type_of(model),
        "architecture": model.config.to_dict(),
        **(meta or {}),
    }
    save_tensors_atomic(model.state_dict(), folder / WEIGHTS)
    write_json_atomic(folder / CONFIG, config)
    return folder


def read_config(folder: Path) -> dict:
    """Read and check ``config.json`` of a checkpoint folder."""
    path = folder / CONFIG
    if not path.is_file():
        raise CheckpointError(f"checkpoint {folder}: {CONFIG} is missing")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(
            f"checkpoint {folder}: {CONFIG} is not valid JSON ({error})"
        ) from error
    for key in ("model", "architecture"):
        if key not in config:
            raise CheckpointError(f"checkpoint {folder}: {CONFIG} lacks the key {key!r}")
    return config


def _load_weights(folder: Path) -> dict[str, torch.Tensor]:
    path = folder / WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"checkpoint {folder}: {WEIGHTS} is missing")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"checkpoint {folder}: {WEIGHTS} is truncated or corrupt ({error})"
        ) from error


def _check_weights(folder: Path, model: Generator, weights: dict[str, torch.Tensor]) -> None:
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    received = {key: tuple(value.shape) for key, value in weights.items()}
    if expected.keys() != received.keys():
        missing = sorted(expected.keys() - received.keys())
        extra = sorted(received.keys() - expected.keys())
        raise CheckpointError(
            f"checkpoint {folder}: weights do not match the architecture in {CONFIG} "
            f"(missing {missing}, unexpected {extra})"
        )
    for key, shape in expected.items():
        if received[key] != shape:
            raise CheckpointError(
                f"checkpoint {folder}: weight {key!r} should have shape {shape} for the "
                f"architecture in {CONFIG}; received {received[key]}"
            )
    for key, value in weights.items():
        if not torch.isfinite(value).all():
            raise CheckpointError(f"checkpoint {folder}: weight {key!r} holds NaN or inf")


def resolve_checkpoint(name_or_path: str | Path) -> Path:
    """A shipped checkpoint name (e.g. ``"mnist-vae"``) or a folder path -> the folder."""
    if str(name_or_path) in SHIPPED:
        return SHIPPED[str(name_or_path)]
    folder = Path(name_or_path)
    if str(name_or_path).strip() and folder.is_dir():
        return folder
    reason = "a file, not a folder" if folder.is_file() else "not an existing folder"
    raise CheckpointError(
        f"checkpoint must be a checkpoint folder (with {WEIGHTS} and {CONFIG}) or one of "
        f"{', '.join(SHIPPED)}; received {str(name_or_path)!r}, which is {reason}"
    )


def load_generator(
    name_or_path: str | Path,
    *,
    latent_dim: int | None = None,
    output_shape: tuple[int, ...] | None = None,
) -> Generator:
    """Load a checkpoint into a generator in eval mode.

    Args:
        name_or_path: a shipped name (``"mnist-vae"``) or a checkpoint folder.
        latent_dim: if given, the latent size the caller expects.
        output_shape: if given, the (C, H, W) the caller expects.

    Raises:
        CheckpointError: missing, truncated or corrupt files, or a model that does not match
            its config or the expectations above.
    """
    folder = resolve_checkpoint(name_or_path)
    config = read_config(folder)
    check_choice("checkpoint model type", config["model"], tuple(MODEL_TYPES))
    cls, config_cls = MODEL_TYPES[config["model"]]
    try:
        model = cls(config_cls.from_dict(config["architecture"]))
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(
            f"checkpoint {folder}: bad architecture in {CONFIG} ({error})"
        ) from error
    weights = _load_weights(folder)
    _check_weights(folder, model, weights)
    model.load_state_dict(weights)
    if latent_dim is not None and model.latent_dim != latent_dim:
        raise CheckpointError(
            f"checkpoint {folder}: latent size {model.latent_dim}, expected {latent_dim}"
        )
    if output_shape is not None and tuple(model.output_shape) != tuple(output_shape):
        raise CheckpointError(
            f"checkpoint {folder}: output shape {tuple(model.output_shape)}, "
            f"expected {tuple(output_shape)}"
        )
    model.eval()
    model.requires_grad_(False)
    model.meta = config
    return model


__all__ = ["SHIPPED", "load_generator", "read_config", "save_checkpoint"]
