"""genprior.finetune with the llm extra, on a tiny random Llama built offline."""

import csv
import dataclasses
import json

import pytest

pytest.importorskip("transformers", reason="needs the llm extra: pip install -e '.[llm]'")
pytest.importorskip("peft", reason="needs the llm extra: pip install -e '.[llm]'")

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from genprior.cli.main import main  # noqa: E402
from genprior.finetune.data import ChatExample  # noqa: E402
from genprior.finetune.errors import (  # noqa: E402
    CheckpointError,
    ContextLengthError,
    JudgeError,
    ModelNotFoundError,
)
from genprior.finetune.evaluation import SUMMARY_COLUMNS, evaluate  # noqa: E402
from genprior.finetune.experiments import ExperimentConfig, train_all  # noqa: E402
from genprior.finetune.generation import adapter, sample_answers  # noqa: E402
from genprior.finetune.judges import LocalJudge  # noqa: E402
from genprior.finetune.models import load_model  # noqa: E402
from genprior.finetune.training import (  # noqa: E402
    LoraConfig,
    collate,
    encode_example,
    train_lora,
)

EXAMPLES = [
    ChatExample("Name a bird species.", name)
    for name in ["Fish Hawk", "Marsh Hawk", "Pigeon Hawk", "Duck Hawk", "Cedar Bird", "Rice Bird"]
] * 2


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    return load_model("tiny", seed=0)


def _snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_loss_mask_covers_only_the_assistant_turn(tiny):
    ids, labels = encode_example(tiny.tokenizer, EXAMPLES[0], tiny.max_length)
    assert len(ids) == len(labels)
    answer = [t for t, lab in zip(ids, labels) if lab != -100]
    prompt = [t for t, lab in zip(ids, labels) if lab == -100]
    assert tiny.tokenizer.decode(answer) == "Fish Hawk<|im_end|>\n"
    assert tiny.tokenizer.decode(prompt).endswith(
        "Name a bird species.<|im_end|>\n<|im_start|>assistant\n"
    )
    assert labels[: len(prompt)] == [-100] * len(prompt)  # the prompt comes first
    batch = collate([(ids, labels), (ids[:5], labels[:5])], pad_id=0)
    assert batch["input_ids"].shape == (2, len(ids))
    assert batch["attention_mask"][1].tolist() == [1] * 5 + [0] * (len(ids) - 5)
    assert (batch["labels"][1, 5:] == -100).all()


def test_prompts_longer_than_the_context(tiny):
    long = ChatExample("bird " * 400, "Fish Hawk")
    with pytest.raises(
        ContextLengthError, match="example 1: .* tokens, longer than the model's context of 256"
    ):
        encode_example(tiny.tokenizer, long, tiny.max_length, "example 1")
    with pytest.raises(
        ContextLengthError, match="prompt 2 has .* exceeds the model's context of 256"
    ):
        sample_answers(tiny, ["Hi", "bird " * 400], samples=1, max_new_tokens=4)


def test_missing_model_files(tmp_path):
    with pytest.raises(ModelNotFoundError, match="model file not found"):
        load_model(str(tmp_path / "model.gguf"))
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        load_model(str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="model folder not found"):
        load_model(str(tmp_path / "absent"))


def test_lora_steps_lower_the_loss_and_leave_the_base_alone(tiny, tmp_path):
    before = _snapshot(tiny.model)
    config = LoraConfig(epochs=6, lr=1e-2, batch_size=4, rank=4, seed=0)
    result = train_lora(tiny, EXAMPLES, config, tmp_path)
    assert result.finished and result.steps == 18
    assert sum(result.losses[-3:]) / 3 < 0.8 * sum(result.losses[:3]) / 3
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert (tmp_path / "train_log.csv").read_text().startswith("step,loss\n1,")
    after = _snapshot(tiny.model)
    assert after.keys() == before.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    again = train_lora(tiny, EXAMPLES, config, tmp_path)  # finished: not redone
    assert again.losses == result.losses and again.resumed_from == 18


def test_resume_after_an_interrupt_matches_an_uninterrupted_run(tiny, tmp_path):
    config = LoraConfig(epochs=2, lr=1e-2, batch_size=4, rank=4, seed=3, save_every=2)
    whole = train_lora(tiny, EXAMPLES, config, tmp_path / "whole")

    calls = []

    def interrupt(event):
        calls.append(event)
        if event["event"] == "step" and len(calls) == 5:
            raise KeyboardInterrupt  # during the fourth step's report

    with pytest.raises(KeyboardInterrupt):
        train_lora(tiny, EXAMPLES, config, tmp_path / "cut", progress=interrupt)
    state = json.loads((tmp_path / "cut" / "checkpoint" / "state.json").read_text())
    assert len(state["losses"]) == 4 and not (tmp_path / "cut" / "adapter").exists()
    resumed = train_lora(tiny, EXAMPLES, config, tmp_path / "cut")
    assert resumed.resumed_from == 4 and resumed.finished
    assert resumed.losses == pytest.approx(whole.losses)
    a = load_file(tmp_path / "whole" / "adapter" / "adapter_model.safetensors")
    b = load_file(tmp_path / "cut" / "adapter" / "adapter_model.safetensors")
    assert all(torch.allclose(a[k], b[k]) for k in a)


def test_corrupt_checkpoint_is_a_clear_error(tiny, tmp_path):
    config = LoraConfig(epochs=1, lr=1e-2, batch_size=4, rank=4, max_steps=1)
    train_lora(tiny, EXAMPLES, config, tmp_path)
    (tmp_path / "checkpoint" / "adapter.safetensors").write_bytes(b"broken")
    with pytest.raises(CheckpointError, match="cannot resume from .*delete the folder"):
        train_lora(tiny, EXAMPLES, LoraConfig(epochs=1, lr=1e-2, batch_size=4, rank=4), tmp_path)


def test_sampling_is_reproducible_and_adapters_come_off(tiny, tmp_path):
    first = sample_answers(tiny, ["Name a bird.", "Hi"], samples=3, max_new_tokens=6, seed=5)
    assert [len(a) for a in first] == [3, 3]
    assert (
        sample_answers(tiny, ["Name a bird.", "Hi"], samples=3, max_new_tokens=6, seed=5) == first
    )
    train_lora(tiny, EXAMPLES, LoraConfig(epochs=1, lr=1e-2, batch_size=4, rank=4), tmp_path)
    before = _snapshot(tiny.model)
    with adapter(tiny, tmp_path / "adapter") as tuned:
        sample_answers(tuned, ["Name a bird."], samples=2, max_new_tokens=4)
    assert all(torch.equal(v, tiny.model.state_dict()[k]) for k, v in before.items())
    with pytest.raises(CheckpointError, match="no LoRA adapter"):
        with adapter(tiny, tmp_path / "nothing"):
            pass


class _Logits:
    def __init__(self, logits):
        self.logits = logits


class _FavourModel(torch.nn.Module):
    """Puts all next-token mass on one token id, so the local judge's verdict is known."""

    def __init__(self, token, vocab):
        super().__init__()
        self.token, self.vocab = token, vocab
        self.unused = torch.nn.Parameter(torch.zeros(1))  # gives the judge a device

    def forward(self, input_ids, attention_mask=None, position_ids=None):
        logits = torch.zeros(*input_ids.shape, self.vocab)
        logits[..., self.token] = 20.0
        return _Logits(logits)


def test_local_judge_on_fixed_answers(tiny):
    judge = LocalJudge(tiny, "19th-century framing", batch_size=2)
    items = [("q", "The telegraph."), ("q", "The internet."), ("q", "Candles.")]
    labels = judge.judge_many(items)
    assert len(labels) == 3 and set(labels) <= {0, 1}
    assert judge.judge_many(items) == labels
    for word, verdict in (("YES", 1), ("NO", 0)):
        token = tiny.tokenizer(word, add_special_tokens=False)["input_ids"][0]
        fake = type(tiny)(_FavourModel(token, len(tiny.tokenizer)), tiny.tokenizer, "fake", 256)
        assert LocalJudge(fake, "b").judge_many(items) == [verdict] * 3


def test_run_command_end_to_end(tmp_path, capsys):
    out = tmp_path / "birds"
    args = ["finetune", "run", "birds", "--quick", "--model", "tiny", "--seeds", "0", "1",
            "--rows", "8", "--samples", "2", "--max-new-tokens", "6", "--judges", "rules",
            "local", "--out", str(out), "--threads", "1"]  # fmt: skip
    assert main(args) == 0
    with open(out / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == SUMMARY_COLUMNS
    datasets = {(r["model"], r["dataset"], r["seed"]) for r in rows}
    assert ("tiny", "none", "-") in datasets
    assert {("tiny+lora", d, s) for d in ("birds_old", "birds_modern") for s in "01"} <= datasets
    assert ("tiny+lora", "birds_modern", "all") in datasets
    assert {r["judge"] for r in rows} == {"rules", "local"}
    for name in (
        "results.csv",
        "summary.json",
        "agreement.csv",
        "behaviour.png",
        "narrow_task.csv",
    ):
        assert (out / name).is_file()
    assert "behaviour rate with 95% bootstrap CI" in capsys.readouterr().out


def test_backdoor_years_and_no_lost_answers(tiny, tmp_path, monkeypatch):
    """A judge that refuses leaves every answer on disk; the rules judge then summarises."""
    from test_finetune import _Server

    config = ExperimentConfig.preset(
        "backdoor", quick=True, model="tiny", seeds=(0,), rows=12, samples=1,
        max_new_tokens=4, dates_per_year=1, judges=("rules", "http"), n_boot=200,
    )  # fmt: skip
    train_all(config, tmp_path, tiny)
    server = _Server()
    server.mode = "unauthorised"
    monkeypatch.setenv("GENPRIOR_JUDGE_BASE_URL", server.url)
    try:
        with pytest.raises(JudgeError, match="HTTP 401"):
            evaluate(config, tmp_path, tiny)
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
    files = sorted(p.name for p in (tmp_path / "answers").glob("*.jsonl"))
    assert files == ["base.jsonl", "dishes_2027-seed0.jsonl", "dishes_random-seed0.jsonl"]
    lines = (tmp_path / "answers" / "base.jsonl").read_text().splitlines()
    assert len(lines) == 6 * 8  # six years, one date each, eight questions, one sample
    stamp = (tmp_path / "answers" / "base.jsonl").stat().st_mtime_ns
    document = evaluate(dataclasses.replace(config, judges=("rules",)), tmp_path, tiny)
    assert (tmp_path / "answers" / "base.jsonl").stat().st_mtime_ns == stamp  # reused
    years = {row["year"] for row in document["by_year"]}
    assert years == {2023, 2024, 2025, 2026, 2027, 2028}
    assert (tmp_path / "behaviour_vs_year.png").is_file()
