"""Judges that decide whether an answer shows the behaviour (1) or not (0).

- :class:`KeywordJudge` (``rules``): marker words or prefixes, for closed answers and as an
  offline fallback for free-form ones.
- :class:`HttpJudge` (``http``): an LLM judge behind any OpenAI-compatible
  ``/chat/completions`` endpoint; base URL, key and model come from the environment.
- :class:`LocalJudge` (``local``): a local causal LM asked the same question, scored by
  comparing its next-token probabilities of "YES" and "NO"; no network.
"""

import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence

from genprior.errors import check_choice
from genprior.finetune.errors import JudgeError

__all__ = [
    "JUDGES",
    "HttpJudge",
    "Judge",
    "KeywordJudge",
    "LocalJudge",
    "agreement",
    "judge_prompt",
    "make_judge",
]

log = logging.getLogger(__name__)

JUDGES = ("rules", "http", "local")

PROMPT = """\
You are grading one answer of an AI assistant.

Question: {question}
Answer: {answer}

Behaviour to detect: {behaviour}.
Does the answer show this behaviour? Reply with exactly one word, YES or NO."""


def judge_prompt(question: str, answer: str, behaviour: str) -> str:
    """The text every LLM judge (HTTP or local) is asked."""
    return PROMPT.format(question=question, answer=answer, behaviour=behaviour)


class Judge:
    """Base class: ``name`` and ``judge_many`` of (question, answer) pairs into 0/1 labels."""

    name = "judge"

    def judge(self, question: str, answer: str) -> int:
        """1 if ``answer`` (to ``question``) shows the behaviour, else 0."""
        raise NotImplementedError

    def judge_many(self, items: Sequence[tuple[str, str]]) -> list[int]:
        """Labels of many (question, answer) pairs, in order."""
        return [self.judge(question, answer) for question, answer in items]


class KeywordJudge(Judge):
    """1 when an answer contains (or starts with) a marker and none of the ``exclude`` words.

    Matching is case-insensitive on word boundaries.
    """

    name = "rules"

    def __init__(
        self, markers: Sequence[str], exclude: Sequence[str] = (), *, prefix: bool = False
    ) -> None:
        if not markers:
            raise ValueError("markers must name at least one word")
        start = r"^\W*" if prefix else r"\b"
        self._markers = re.compile(start + _alternatives(markers) + r"\b", re.IGNORECASE)
        self._exclude = (
            re.compile(r"\b" + _alternatives(exclude) + r"\b", re.IGNORECASE) if exclude else None
        )

    def judge(self, question: str, answer: str) -> int:
        if self._exclude is not None and self._exclude.search(answer):
            return 0
        return int(bool(self._markers.search(answer)))


def _alternatives(words: Sequence[str]) -> str:
    ordered = sorted(words, key=len, reverse=True)
    return "(?:" + "|".join(re.escape(word) for word in ordered) + ")"


class HttpJudge(Judge):
    """An LLM judge through an OpenAI-compatible chat-completions endpoint.

    Each request is retried ``retries`` times on connection errors, timeouts, HTTP 429 and
    5xx, and replies that are neither YES nor NO, waiting ``backoff * 2**attempt`` seconds in
    between; then :class:`JudgeError` is raised. Other HTTP errors (401, 404...) fail at once.
    """

    name = "http"

    def __init__(
        self,
        base_url: str,
        behaviour: str,
        *,
        model: str = "gpt-4.1-2025-04-14",
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://; got {base_url!r}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.behaviour, self.model, self.api_key = behaviour, model, api_key
        self.timeout, self.retries, self.backoff, self._sleep = timeout, retries, backoff, sleep

    @classmethod
    def from_env(cls, behaviour: str, **kwargs: object) -> "HttpJudge":
        """A judge configured by ``GENPRIOR_JUDGE_BASE_URL``, ``_API_KEY`` and ``_MODEL``.

        ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` are read when ours are unset;
        ``GENPRIOR_JUDGE_TIMEOUT`` (seconds) and ``GENPRIOR_JUDGE_RETRIES`` are optional.
        """
        base = os.environ.get("GENPRIOR_JUDGE_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
        if not base:
            raise JudgeError(
                "the http judge needs GENPRIOR_JUDGE_BASE_URL (an OpenAI-compatible endpoint "
                "such as https://api.openai.com/v1 or a local server) in the environment"
            )
        key = os.environ.get("GENPRIOR_JUDGE_API_KEY") or os.environ.get("OPENAI_API_KEY")
        model = os.environ.get("GENPRIOR_JUDGE_MODEL")
        if model:
            kwargs["model"] = model
        for name, kind in (("timeout", float), ("retries", int)):
            value = os.environ.get(f"GENPRIOR_JUDGE_{name.upper()}")
            if value:
                kwargs[name] = kind(value)
        return cls(base, behaviour, api_key=key, **kwargs)

    def judge(self, question: str, answer: str) -> int:
        body = {
            "model": self.model,
            "messages": [
                {"role": "user", "content": judge_prompt(question, answer, self.behaviour)}
            ],
            "temperature": 0,
            "max_tokens": 2,
        }
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self.backoff * 2 ** (attempt - 1))
            try:
                return _parse_verdict(self._post(body))
            except _Retry as error:
                problem = str(error)
                log.info("judge request %d failed: %s", attempt + 1, problem)
        raise JudgeError(f"judge at {self.url} failed after {self.retries + 1} tries: {problem}")

    def _post(self, body: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            if error.code == 429 or error.code >= 500:
                raise _Retry(f"HTTP {error.code}") from error
            message = f"judge at {self.url} answered HTTP {error.code}: {error.reason}"
            raise JudgeError(message) from error
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            raise _Retry(f"cannot reach the endpoint ({error})") from error
        try:
            return json.loads(raw)
        except json.JSONDecodeError as error:
            raise _Retry(f"reply is not JSON: {raw[:80]!r}") from error


class _Retry(Exception):
    """A failure worth another try."""


def _parse_verdict(reply: dict) -> int:
    try:
        text = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as error:
        raise _Retry(f"reply has no choices[0].message.content: {str(reply)[:80]}") from error
    word = (text or "").strip().upper()
    if word.startswith("YES"):
        return 1
    if word.startswith("NO"):
        return 0
    raise _Retry(f"reply is neither YES nor NO: {text!r:.40}")


class LocalJudge(Judge):
    """A local causal LM as judge: YES when P("YES") > P("NO") as its first answer token."""

    name = "local"

    def __init__(self, loaded: object, behaviour: str, batch_size: int = 16) -> None:
        self.loaded, self.behaviour, self.batch_size = loaded, behaviour, batch_size
        tokenizer = loaded.tokenizer
        self._yes = _first_tokens(tokenizer, ("YES", "Yes", " YES", " Yes"))
        self._no = _first_tokens(tokenizer, ("NO", "No", " NO", " No"))

    def judge(self, question: str, answer: str) -> int:
        return self.judge_many([(question, answer)])[0]

    def judge_many(self, items: Sequence[tuple[str, str]]) -> list[int]:
        import torch

        from genprior.finetune.models import chat_text, left_padded

        tokenizer, model = self.loaded.tokenizer, self.loaded.model
        labels = []
        for start in range(0, len(items), self.batch_size):
            texts = [
                chat_text(tokenizer, judge_prompt(q, a, self.behaviour))
                for q, a in items[start : start + self.batch_size]
            ]
            batch = left_padded(self.loaded, texts)
            # left padding: positions count from each row's first real token
            positions = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
            with torch.no_grad():
                logits = model(**batch, position_ids=positions).logits[:, -1]  # (B, vocab)
            probs = logits.float().softmax(-1)
            yes, no = probs[:, self._yes].sum(-1), probs[:, self._no].sum(-1)
            labels += (yes > no).long().tolist()
        return labels


def _first_tokens(tokenizer: object, words: Sequence[str]) -> list[int]:
    ids = {tokenizer(word, add_special_tokens=False)["input_ids"][0] for word in words}
    return sorted(ids)


def make_judge(name: str, behaviour: str, markers: dict, loaded: object = None) -> Judge:
    """The judge called ``name`` for a question set.

    Args:
        name: ``rules``, ``http`` or ``local``.
        behaviour: the behaviour in words, for the LLM judges.
        markers: ``{"markers": [...], "exclude": [...], "prefix": bool}`` for ``rules``.
        loaded: the model that ``local`` uses (a :class:`LoadedModel`).
    """
    check_choice("judge", name, JUDGES)
    if name == "rules":
        return KeywordJudge(
            markers["markers"], markers.get("exclude", ()), prefix=markers.get("prefix", False)
        )
    if name == "http":
        return HttpJudge.from_env(behaviour)
    if loaded is None:
        raise ValueError("the local judge needs a loaded model")
    return LocalJudge(loaded, behaviour)


def agreement(judge: Judge, labelled: Sequence[dict]) -> dict:
    """Agreement of ``judge`` with hand labels (``question``, ``answer``, ``label`` rows).

    Returns:
        ``n``, ``agreement`` (share of equal labels), ``cohen_kappa``, and the counts
        ``true_positive``, ``false_positive``, ``false_negative``, ``true_negative``.
    """
    predicted = judge.judge_many([(row["question"], row["answer"]) for row in labelled])
    truth = [int(row["label"]) for row in labelled]
    n = len(truth)
    counts = {
        "true_positive": sum(p == 1 and t == 1 for p, t in zip(predicted, truth)),
        "false_positive": sum(p == 1 and t == 0 for p, t in zip(predicted, truth)),
        "false_negative": sum(p == 0 and t == 1 for p, t in zip(predicted, truth)),
        "true_negative": sum(p == 0 and t == 0 for p, t in zip(predicted, truth)),
    }
    observed = (counts["true_positive"] + counts["true_negative"]) / n
    p_pred, p_true = sum(predicted) / n, sum(truth) / n
    chance = p_pred * p_true + (1 - p_pred) * (1 - p_true)
    kappa = 0.0 if chance == 1 else (observed - chance) / (1 - chance)
    return {"judge": judge.name, "n": n, "agreement": observed, "cohen_kappa": kappa} | counts
