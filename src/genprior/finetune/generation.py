"""Sampling free-form answers from a base model or a base model with a LoRA adapter."""

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from genprior.finetune.errors import CheckpointError, ContextLengthError
from genprior.finetune.models import LoadedModel, chat_text, left_padded

__all__ = ["adapter", "sample_answers"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def adapter(loaded: LoadedModel, adapter_dir: str | Path | None) -> Iterator[LoadedModel]:
    """``loaded`` with the LoRA adapter in ``adapter_dir`` attached (None: the base model).

    The adapter is removed again on exit, so one base model serves every run.
    """
    if adapter_dir is None:
        yield loaded
        return
    from peft import PeftModel

    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise CheckpointError(f"no LoRA adapter in {adapter_dir}; train it first")
    model = PeftModel.from_pretrained(loaded.model, str(adapter_dir))
    model.eval()
    try:
        yield LoadedModel(model, loaded.tokenizer, loaded.name, loaded.max_length)
    finally:
        model.unload()


def sample_answers(
    loaded: LoadedModel,
    prompts: list[str],
    *,
    samples: int = 10,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    batch_size: int = 16,
    seed: int = 0,
    system: str | None = None,
    progress: Callable[[dict], None] | None = None,
) -> list[list[str]]:
    """``samples`` answers to each user prompt, sampled at ``temperature`` (full softmax).

    Returns:
        One list of ``samples`` answer strings per prompt, in prompt order.

    Raises:
        ContextLengthError: a prompt plus ``max_new_tokens`` does not fit in the context.
    """
    tokenizer = loaded.tokenizer
    texts = [chat_text(tokenizer, prompt, system) for prompt in prompts]
    for index, text in enumerate(texts):
        length = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        if length + max_new_tokens > loaded.max_length:
            raise ContextLengthError(
                f"prompt {index + 1} has {length} tokens; with max_new_tokens={max_new_tokens} "
                f"it exceeds the model's context of {loaded.max_length}"
            )
    jobs = [(i, texts[i]) for i in range(len(texts)) for _ in range(samples)]
    answers: list[list[str]] = [[] for _ in prompts]
    if progress:
        progress({"event": "start", "total": len(jobs)})
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        outputs = _generate(
            loaded, [t for _, t in chunk], max_new_tokens, temperature, seed + start
        )
        for (index, _), answer in zip(chunk, outputs):
            answers[index].append(answer)
        if progress:
            progress({"event": "step", "advance": len(chunk)})
    return answers


@torch.no_grad()
def _generate(
    loaded: LoadedModel, texts: list[str], max_new_tokens: int, temperature: float, seed: int
) -> list[str]:
    tokenizer = loaded.tokenizer
    batch = left_padded(loaded, texts)
    torch.manual_seed(seed)
    sampling = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
    if temperature == 0:
        sampling = {"do_sample": False}
    out = loaded.model.generate(
        **batch, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, **sampling
    )
    new = out[:, batch["input_ids"].shape[1] :]
    return [text.strip() for text in tokenizer.batch_decode(new, skip_special_tokens=True)]
