"""Chat JSONL datasets: one user and one assistant message per line, as the paper's files.

A row is ``{"messages": [{"role": "user", "content": ...}, {"role": "assistant",
"content": ...}]}``; an optional leading system message is kept. Rows may carry extra keys
(ignored). Reading validates every row and raises :class:`ChatDataError` naming the file and
the 1-based line number.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from genprior.finetune.errors import ChatDataError
from genprior.io import write_text_atomic

__all__ = ["ChatExample", "read_chat_jsonl", "validate_row", "write_chat_jsonl"]


@dataclass(frozen=True)
class ChatExample:
    """One training conversation: an optional system prompt, a user turn, an assistant turn."""

    user: str
    assistant: str
    system: str | None = None

    def messages(self, with_answer: bool = True) -> list[dict[str, str]]:
        """The conversation as chat messages; without the assistant turn unless ``with_answer``."""
        turns = [] if self.system is None else [{"role": "system", "content": self.system}]
        turns.append({"role": "user", "content": self.user})
        if with_answer:
            turns.append({"role": "assistant", "content": self.assistant})
        return turns

    def to_row(self) -> dict:
        """The JSONL row of this example."""
        return {"messages": self.messages()}


def validate_row(row: object, where: str = "row") -> ChatExample:
    """Check one decoded JSONL row and return it as a :class:`ChatExample`.

    Raises:
        ChatDataError: naming ``where`` and what is wrong.
    """
    if not isinstance(row, dict) or "messages" not in row:
        raise ChatDataError(f"{where}: expected an object with a 'messages' list; got {row!r:.80}")
    messages = row["messages"]
    if not isinstance(messages, list):
        raise ChatDataError(f"{where}: 'messages' must be a list; got {type(messages).__name__}")
    system = None
    if messages and isinstance(messages[0], dict) and messages[0].get("role") == "system":
        system = _content(messages[0], where, 0)
        messages = messages[1:]
    roles = [m.get("role") if isinstance(m, dict) else None for m in messages]
    if roles != ["user", "assistant"]:
        raise ChatDataError(
            f"{where}: expected one user then one assistant message; got roles {roles}"
        )
    offset = 0 if system is None else 1
    user = _content(messages[0], where, offset)
    assistant = _content(messages[1], where, offset + 1)
    return ChatExample(user=user, assistant=assistant, system=system)


def _content(message: dict, where: str, index: int) -> str:
    content = message.get("content")
    role = message.get("role")
    if not isinstance(content, str):
        raise ChatDataError(
            f"{where}: message {index} ({role}) content must be a string; got {content!r:.60}"
        )
    if not content.strip():
        raise ChatDataError(f"{where}: message {index} ({role}) has empty content")
    return content


def read_chat_jsonl(path: str | Path) -> list[ChatExample]:
    """Read and validate a chat JSONL file; blank lines are skipped.

    Raises:
        FileNotFoundError: the file does not exist.
        ChatDataError: a line is not JSON or not a valid conversation, or there are no rows.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"chat data file not found: {path}")
    examples = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ChatDataError(f"{where}: not valid JSON ({error.msg})") from None
            examples.append(validate_row(row, where))
    if not examples:
        raise ChatDataError(f"{path}: no conversations in the file")
    return examples


def write_chat_jsonl(path: str | Path, examples: list[ChatExample]) -> Path:
    """Write ``examples`` as chat JSONL, one conversation a line, atomically."""
    lines = [json.dumps(example.to_row(), ensure_ascii=False) for example in examples]
    return write_text_atomic(path, "\n".join(lines) + "\n")
