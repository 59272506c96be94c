"""LoRA finetuning with the loss on assistant tokens only, with checkpoints that resume.

The loop is ours (no ``Trainer``): AdamW on the LoRA weights, a constant learning rate, a
fixed batch order per (seed, epoch), and a checkpoint of the adapter, the optimizer and the
step every ``save_every`` steps. A rerun with the same model, data and config picks up at the
last checkpoint and ends with the same weights as an uninterrupted run (on CPU).
"""

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from genprior.finetune.data import ChatExample
from genprior.finetune.errors import CheckpointError, ContextLengthError
from genprior.finetune.models import LoadedModel
from genprior.io import write_csv_atomic, write_json_atomic

__all__ = ["LoraConfig", "TrainResult", "collate", "encode_example", "train_lora"]

log = logging.getLogger(__name__)

IGNORE = -100


@dataclass(frozen=True)
class LoraConfig:
    """Hyperparameters of one LoRA finetuning run.

    Attributes:
        epochs: passes over the data.
        lr: AdamW learning rate (constant).
        batch_size: conversations per step.
        rank: LoRA rank r; the scale alpha is ``alpha`` (default 2 r).
        alpha: LoRA alpha (None: twice the rank).
        dropout: LoRA dropout.
        target_modules: module names that get adapters ("all-linear" for every linear layer).
        seed: seeds the LoRA initialisation and the batch order.
        save_every: steps between checkpoints.
        max_steps: stop after this many steps in total (None: run every epoch); for tests and
            for simulating an interruption.
    """

    epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 4
    rank: int = 8
    alpha: float | None = None
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    seed: int = 0
    save_every: int = 20
    max_steps: int | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "rank", "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1; received {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive; received {self.lr}")


@dataclass
class TrainResult:
    """What a finished (or stopped) run left: its adapter folder and per-step losses."""

    adapter_dir: Path
    steps: int
    total_steps: int
    losses: list[float] = field(default_factory=list)
    resumed_from: int = 0

    @property
    def finished(self) -> bool:
        """Whether every planned step ran."""
        return self.steps >= self.total_steps


def encode_example(
    tokenizer: object, example: ChatExample, max_length: int, where: str = "example"
) -> tuple[list[int], list[int]]:
    """Token ids of a conversation and labels that are ``-100`` outside the assistant turn.

    The prompt is the chat template up to the assistant header; the rest (the answer and the
    template's end-of-turn tokens) is tokenised separately and is what the loss sees.

    Raises:
        ContextLengthError: the conversation has more than ``max_length`` tokens.
    """
    prompt = tokenizer.apply_chat_template(
        example.messages(with_answer=False), add_generation_prompt=True, tokenize=False
    )
    full = tokenizer.apply_chat_template(example.messages(), tokenize=False)
    if not full.startswith(prompt):
        raise ValueError(f"{where}: the chat template does not extend the prompt with the answer")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
    length = len(prompt_ids) + len(answer_ids)
    if length > max_length:
        raise ContextLengthError(
            f"{where}: {length} tokens, longer than the model's context of {max_length}; "
            "shorten the conversation or raise max_length"
        )
    return prompt_ids + answer_ids, [IGNORE] * len(prompt_ids) + answer_ids


def collate(encoded: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch: ``input_ids``, ``attention_mask`` and ``labels``, each (B, T)."""
    width = max(len(ids) for ids, _ in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, (tokens, targets) in enumerate(encoded):
        ids[row, : len(tokens)] = torch.tensor(tokens)
        labels[row, : len(targets)] = torch.tensor(targets)
        mask[row, : len(tokens)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _fingerprint(loaded: LoadedModel, examples: list[ChatExample], config: LoraConfig) -> str:
    settings = asdict(config)
    settings.pop("save_every"), settings.pop("max_steps")
    digest = hashlib.sha256(json.dumps([loaded.name, settings], default=str).encode())
    for example in examples:
        digest.update(json.dumps(example.to_row(), sort_keys=True).encode())
    return digest.hexdigest()[:16]


def _batches(n: int, config: LoraConfig) -> list[list[int]]:
    """Every step's example indices, epoch by epoch, in a fixed order per (seed, epoch)."""
    order = []
    for epoch in range(config.epochs):
        generator = torch.Generator().manual_seed(config.seed * 1009 + epoch)
        perm = torch.randperm(n, generator=generator).tolist()
        order += [perm[i : i + config.batch_size] for i in range(0, n, config.batch_size)]
    return order


def train_lora(
    loaded: LoadedModel,
    examples: list[ChatExample],
    config: LoraConfig,
    out_dir: str | Path,
    progress: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Finetune LoRA adapters on ``examples`` and save them in ``out_dir/adapter``.

    The base model is left as it was (the adapters are removed after saving). Checkpoints go
    to ``out_dir/checkpoint``; a rerun resumes there, and a finished run is not redone.

    Args:
        loaded: the base model and tokenizer (see :func:`load_model`).
        examples: the training conversations.
        config: hyperparameters.
        out_dir: the run's folder.
        progress: called with ``{"event": "start", "total", "done"}`` and then
            ``{"event": "step", "loss"}`` after every step.
    """
    from peft import get_peft_model

    out_dir = Path(out_dir)
    encoded = [
        encode_example(loaded.tokenizer, ex, loaded.max_length, f"example {i + 1}")
        for i, ex in enumerate(examples)
    ]
    fingerprint = _fingerprint(loaded, examples, config)
    batches = _batches(len(encoded), config)
    done = _finished(out_dir, fingerprint, len(batches))
    if done is not None:
        log.info("%s: already trained (%d steps); skipping", out_dir, len(batches))
        return done
    torch.manual_seed(config.seed)
    model = get_peft_model(loaded.model, _peft_config(config))
    try:
        return _run(model, loaded, encoded, batches, config, out_dir, fingerprint, progress)
    finally:
        model.unload()
        loaded.model.eval()


def _peft_config(config: LoraConfig) -> object:
    from peft import LoraConfig as PeftLoraConfig

    targets = config.target_modules
    return PeftLoraConfig(
        r=config.rank,
        lora_alpha=config.alpha if config.alpha is not None else 2 * config.rank,
        lora_dropout=config.dropout,
        target_modules="all-linear" if targets == ("all-linear",) else list(targets),
        task_type="CAUSAL_LM",
    )


def _run(
    model: object,
    loaded: LoadedModel,
    encoded: list,
    batches: list[list[int]],
    config: LoraConfig,
    out_dir: Path,
    fingerprint: str,
    progress: Callable[[dict], None] | None,
) -> TrainResult:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    losses = _resume(model, optimizer, out_dir / "checkpoint", fingerprint)
    start = len(losses)
    stop = len(batches) if config.max_steps is None else min(len(batches), config.max_steps)
    if progress:
        progress({"event": "start", "total": len(batches), "done": start})
    model.train()
    pad_id, device = loaded.tokenizer.pad_token_id, params[0].device
    try:
        for step in range(start, stop):
            batch = collate([encoded[i] for i in batches[step]], pad_id)
            batch = {key: value.to(device) for key, value in batch.items()}
            loss = model(**batch).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            if progress:
                progress({"event": "step", "loss": losses[-1]})
            if (step + 1) % config.save_every == 0 and step + 1 < stop:
                _save_checkpoint(model, optimizer, out_dir, fingerprint, losses)
    except KeyboardInterrupt:
        _save_checkpoint(model, optimizer, out_dir, fingerprint, losses)
        raise
    model.eval()
    _save_checkpoint(model, optimizer, out_dir, fingerprint, losses)
    if len(losses) == len(batches):
        _save_adapter(model, out_dir, fingerprint, losses, config)
    return TrainResult(out_dir / "adapter", len(losses), len(batches), losses, start)


def _save_checkpoint(
    model: object, optimizer: object, out_dir: Path, fingerprint: str, losses: list[float]
) -> None:
    """Write the checkpoint into a fresh folder, then swap it in for the old one."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    tmp, final = out_dir / ".checkpoint.tmp", out_dir / "checkpoint"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = {k: v.detach().contiguous() for k, v in get_peft_model_state_dict(model).items()}
    save_file(weights, tmp / "adapter.safetensors")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    write_json_atomic(tmp / "state.json", {"fingerprint": fingerprint, "losses": losses})
    old = out_dir / ".checkpoint.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    log.debug("checkpoint at step %d in %s", len(losses), final)


def _resume(model: object, optimizer: object, folder: Path, fingerprint: str) -> list[float]:
    """Load a matching checkpoint into ``model`` and ``optimizer``; return its losses."""
    from peft import set_peft_model_state_dict
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    state_file = folder / "state.json"
    if not state_file.is_file():
        return []
    try:
        state = json.loads(state_file.read_text())
        if state["fingerprint"] != fingerprint:
            log.warning("%s belongs to another model, data or config; starting over", folder)
            return []
        set_peft_model_state_dict(model, load_file(folder / "adapter.safetensors"))
        optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
    except (OSError, KeyError, ValueError, RuntimeError, SafetensorError) as error:
        raise CheckpointError(
            f"cannot resume from {folder}: {error}; delete the folder to start over"
        ) from error
    log.info("resuming from step %d (%s)", len(state["losses"]), folder)
    return list(state["losses"])


def _save_adapter(
    model: object, out_dir: Path, fingerprint: str, losses: list[float], config: LoraConfig
) -> None:
    model.save_pretrained(out_dir / "adapter")
    rows = [{"step": i + 1, "loss": loss} for i, loss in enumerate(losses)]
    write_csv_atomic(out_dir / "train_log.csv", rows, ["step", "loss"])
    info = {"fingerprint": fingerprint, "losses": losses, "config": asdict(config)}
    write_json_atomic(out_dir / "adapter" / "training.json", info)


def _finished(out_dir: Path, fingerprint: str, total: int) -> TrainResult | None:
    info_file = out_dir / "adapter" / "training.json"
    if not info_file.is_file():
        return None
    info = json.loads(info_file.read_text())
    if info.get("fingerprint") != fingerprint or len(info.get("losses", [])) != total:
        return None
    return TrainResult(out_dir / "adapter", total, total, info["losses"], total)
