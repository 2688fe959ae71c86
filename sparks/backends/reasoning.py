"""Reasoning controls and normalization (SPEC §4.6). Pure: no I/O.

Requests: `reasoning_effort` / `enable_thinking` become the model's dialect. Responses: whatever
the backend sent (`reasoning_content`, `reasoning`, or a leading `<think>…</think>` in the
content, split across stream chunks at any point) arrives as `reasoning_content`, content clean.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"
EFFORT_FIELDS = ("reasoning_effort", "enable_thinking")


def default_dialect(backend_name: str, base_url: str) -> str:
    """The thinking dialect to assume when `model_info` does not say, by what the backend is."""
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower()
    name = backend_name.lower()
    if parts.port == 11434 or "ollama" in name or "ollama" in host:
        return "ollama"
    if any(k in name for k in ("vllm", "sglang", "llamacpp", "llama.cpp", "lmstudio")) or (
        parts.port in (8000, 8080, 30000, 1234) and host in ("127.0.0.1", "localhost")
    ):
        return "chat_template_kwargs"
    return "openai"


def thinking_wanted(body: dict[str, Any]) -> bool | None:
    """What the client asked for: True/False, or None when it did not ask."""
    enable = body.get("enable_thinking")
    if isinstance(enable, bool):
        return enable
    effort = body.get("reasoning_effort")
    if effort is None:
        return None
    return effort != "none"


def apply_reasoning(body: dict[str, Any], dialect: str) -> dict[str, Any]:
    """Return a copy of `body` with the reasoning fields mapped to `dialect` (or dropped)."""
    if not any(field in body for field in EFFORT_FIELDS):
        return body
    out = {k: v for k, v in body.items() if k not in EFFORT_FIELDS}
    wanted = thinking_wanted(body)
    effort = body.get("reasoning_effort")
    if wanted is None:
        return out
    if dialect == "openai":
        if wanted is False:
            out["reasoning_effort"] = "none"
        else:
            out["reasoning_effort"] = effort if effort not in (None, "none") else "medium"
    elif dialect == "chat_template_kwargs":
        kwargs = dict(out.get("chat_template_kwargs") or {})
        kwargs["enable_thinking"] = wanted
        out["chat_template_kwargs"] = kwargs
    elif dialect == "ollama":
        out["think"] = wanted
    return out


def split_leading_think(content: str) -> tuple[str | None, str]:
    """`"<think>r</think>\\n\\nanswer"` → ("r", "answer"); no leading tag → (None, content)."""
    stripped = content.lstrip()
    if not stripped.startswith(OPEN_TAG):
        return None, content
    inner = stripped[len(OPEN_TAG) :]
    end = inner.find(CLOSE_TAG)
    if end < 0:
        return inner, ""  # the answer never left the thinking block
    return inner[:end], inner[end + len(CLOSE_TAG) :].lstrip()


def normalize_message(message: dict[str, Any]) -> None:
    """In place: `reasoning` → `reasoning_content`; a leading think block out of `content`."""
    if "reasoning" in message:
        value = message.pop("reasoning")
        if value and not message.get("reasoning_content"):
            message["reasoning_content"] = value
    content = message.get("content")
    if isinstance(content, str) and OPEN_TAG in content[:64]:
        reasoning, clean = split_leading_think(content)
        if reasoning is not None:
            prior = message.get("reasoning_content") or ""
            message["reasoning_content"] = prior + reasoning
            message["content"] = clean


def _held_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


class ThinkSplitter:
    """Splits one choice's streamed content into (reasoning, content) pieces as they arrive."""

    __slots__ = ("_pending", "_state")

    def __init__(self) -> None:
        self._state = "start"  # start | think | after | pass
        self._pending = ""

    def feed(self, text: str) -> tuple[str, str]:
        if self._state == "pass":
            return "", text
        data = self._pending + text
        self._pending = ""
        reasoning = content = ""
        if self._state == "start":
            stripped = data.lstrip()
            if not stripped or (OPEN_TAG.startswith(stripped) and len(stripped) < len(OPEN_TAG)):
                self._pending = data
                return "", ""
            if not stripped.startswith(OPEN_TAG):
                self._state = "pass"
                return "", data
            self._state = "think"
            data = stripped[len(OPEN_TAG) :]
        if self._state == "think":
            end = data.find(CLOSE_TAG)
            if end < 0:
                hold = _held_suffix(data, CLOSE_TAG)
                self._pending = data[len(data) - hold :] if hold else ""
                return data[: len(data) - hold], ""
            reasoning = data[:end]
            data = data[end + len(CLOSE_TAG) :]
            self._state = "after"
        if self._state == "after":
            data = data.lstrip()
            if not data:
                return reasoning, ""
            self._state = "pass"
        content = data
        return reasoning, content

    def flush(self) -> tuple[str, str]:
        """What is still held at the end of the stream."""
        pending, self._pending = self._pending, ""
        if self._state == "think":
            return pending, ""
        if self._state == "start":
            return "", pending
        return "", ""


class DeltaNormalizer:
    """Per-stream state: one ThinkSplitter per choice index."""

    def __init__(self) -> None:
        self.splitters: dict[int, ThinkSplitter] = {}

    def normalize_chunk(self, chunk: dict[str, Any]) -> None:
        """In place on one chunk's choices' deltas."""
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            if "reasoning" in delta:
                value = delta.pop("reasoning")
                if value and not delta.get("reasoning_content"):
                    delta["reasoning_content"] = value
            content = delta.get("content")
            if not isinstance(content, str) or not content:
                continue
            index = choice.get("index") or 0
            splitter = self.splitters.get(index)
            if splitter is None:
                splitter = self.splitters[index] = ThinkSplitter()
            reasoning, clean = splitter.feed(content)
            delta["content"] = clean
            if reasoning:
                delta["reasoning_content"] = (delta.get("reasoning_content") or "") + reasoning

    def flush(self) -> dict[int, tuple[str, str]]:
        out = {}
        for index, splitter in self.splitters.items():
            reasoning, content = splitter.flush()
            if reasoning or content:
                out[index] = (reasoning, content)
        return out
