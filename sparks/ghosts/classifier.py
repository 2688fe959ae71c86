"""Which ghost answers a `sparks` request (SPEC §5.3): an LLM choice when configured, a
deterministic keyword heuristic otherwise or on failure, `ghost_defaults.default_ghost` (else the
first ghost) last."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sparks.ghosts.definitions import GhostSpec

WORD = re.compile(r"[a-z][a-z0-9_]+")
STOPWORDS = frozenset(
    "the and for with you your are this that from into does have has can our its".split()
)
CHANGE_WORDS = frozenset(
    "fix implement refactor add change write edit create rename remove delete update "
    "feature bug build make replace move migrate".split()
)
LOOK_WORDS = frozenset(
    "where find explain what which how show list explore read look search locate "
    "describe summarize understand".split()
)
CACHE_SIZE = 1024


@dataclass(frozen=True)
class Decision:
    ghost: str
    method: str  # llm | cache | keyword | default
    latency_ms: float
    note: str = ""


def conversation_key(messages: Sequence[dict[str, Any]]) -> str:
    """A conversation is identified by its first user message (later turns share it)."""
    first = next((m for m in messages if m.get("role") == "user"), {})
    raw = json.dumps(first.get("content"), sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def last_user_text(messages: Sequence[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


def keyword_choice(ghosts: Sequence[GhostSpec], text: str) -> str | None:
    """Score ghosts by words shared with their name and description, plus intent words:
    change verbs favour writing ghosts, look verbs read-only ones. None on a tie at zero."""
    words = set(WORD.findall(text.lower())) - STOPWORDS
    best: tuple[float, int] | None = None
    choice = None
    for order, ghost in enumerate(ghosts):
        vocabulary = set(WORD.findall(f"{ghost.name} {ghost.description}".lower())) - STOPWORDS
        score = float(len(words & vocabulary))
        score += 2.0 * len(words & (LOOK_WORDS if ghost.read_only else CHANGE_WORDS))
        key = (score, -order)
        if score > 0 and (best is None or key > best):
            best, choice = key, ghost.name
    return choice


def parse_llm_answer(answer: str, names: Sequence[str]) -> str | None:
    """Accept `coder`, `sparks/coder`, `"coder".`; anything naming not exactly one ghost is None."""
    cleaned = answer.strip().lower().strip("`'\". \n")
    cleaned = cleaned.removeprefix("sparks/")
    if cleaned in names:
        return cleaned
    mentioned = [n for n in names if re.search(rf"\b{re.escape(n)}\b", answer.lower())]
    return mentioned[0] if len(mentioned) == 1 else None


def classifier_messages(ghosts: Sequence[GhostSpec], text: str) -> list[dict[str, str]]:
    listing = "\n".join(f"- {g.name}: {g.description}" for g in ghosts)
    return [
        {
            "role": "system",
            "content": "Pick the assistant best suited to the user's request. Assistants:\n"
            f"{listing}\nAnswer with the assistant's name only.",
        },
        {"role": "user", "content": text[:4000]},
    ]


AskModel = Callable[[list[dict[str, str]]], Awaitable[str]]


class Classifier:
    def __init__(
        self, ghosts: Sequence[GhostSpec], timeout_s: float, default_ghost: str = ""
    ) -> None:
        self.ghosts = list(ghosts)
        self.names = [g.name for g in ghosts]
        self.timeout_s = timeout_s
        fallback = self.names[0] if self.names else ""
        self.default_ghost = default_ghost if default_ghost in self.names else fallback
        self._cache: OrderedDict[str, str] = OrderedDict()

    async def decide(
        self, messages: Sequence[dict[str, Any]], ask: AskModel | None = None
    ) -> Decision:
        """`ask` is the LLM call (None without `[classifier].model`)."""
        started = time.perf_counter()

        def done(ghost: str, method: str, note: str = "") -> Decision:
            return Decision(ghost, method, round((time.perf_counter() - started) * 1000, 2), note)

        text = last_user_text(messages)
        note = ""
        if ask is not None:
            key = conversation_key(messages)
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return done(cached, "cache")
            try:
                async with asyncio.timeout(self.timeout_s):
                    answer = await ask(classifier_messages(self.ghosts, text))
                choice = parse_llm_answer(answer, self.names)
                if choice is not None:
                    self._remember(key, choice)
                    return done(choice, "llm")
                note = f"llm answer {answer[:40]!r} names no ghost"
            except TimeoutError:
                note = f"llm timed out after {self.timeout_s:g}s"
            except Exception as exc:  # any model failure falls back to the heuristic
                note = f"llm failed: {getattr(exc, 'message', None) or type(exc).__name__}"
        choice = keyword_choice(self.ghosts, text)
        if choice is not None:
            return done(choice, "keyword", note)
        return done(self.default_ghost, "default", note)

    def _remember(self, key: str, ghost: str) -> None:
        self._cache[key] = ghost
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
