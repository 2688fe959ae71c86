"""Which ghost answers `sparks` (SPEC §5.3): the keyword heuristic, the LLM answer parser, and
the fallbacks of `Classifier.decide`. Pure: the model call is a plain function."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from sparks.config import parse_config
from sparks.ghosts.classifier import Classifier, keyword_choice, last_user_text, parse_llm_answer
from sparks.ghosts.definitions import GhostSpec, ghost_specs


@pytest.fixture
def ghosts(tmp_path: Path) -> list[GhostSpec]:
    """The default pair: `coder` (writes) then `scout` (read-only)."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    config = parse_config(
        {
            "ghosts": [
                {"name": "coder", "workspace": str(workspace), "description": "Coding tasks."},
                {
                    "name": "scout",
                    "workspace": str(workspace),
                    "read_only": True,
                    "description": "Explores files; changes nothing.",
                },
            ]
        },
        None,
    )
    specs = ghost_specs(config)
    assert [(g.name, g.read_only) for g in specs] == [("coder", False), ("scout", True)]
    return specs


def user(text: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize(
    "text",
    [
        "fix the crash in the parser",
        "Implement a --verbose flag",
        "please REFACTOR this module and rename the class",
        "add a feature: delete old logs",
    ],
)
def test_change_verbs_pick_the_writing_ghost(ghosts: list[GhostSpec], text: str) -> None:
    assert keyword_choice(ghosts, text) == "coder"


@pytest.mark.parametrize(
    "text",
    [
        "where is the config loaded?",
        "Explain how the limiter works",
        "find every caller of resolve",
        "summarize what this repository does",
    ],
)
def test_look_verbs_pick_the_read_only_ghost(ghosts: list[GhostSpec], text: str) -> None:
    assert keyword_choice(ghosts, text) == "scout"


@pytest.mark.parametrize("text", ["", "hello there", "the and for with", "¿qué tal?"])
def test_no_signal_is_none(ghosts: list[GhostSpec], text: str) -> None:
    assert keyword_choice(ghosts, text) is None


def test_words_from_a_ghosts_description_count(ghosts: list[GhostSpec]) -> None:
    assert keyword_choice(ghosts, "changes nothing, please") == "scout"


def test_a_tie_above_zero_goes_to_the_ghost_listed_first(ghosts: list[GhostSpec]) -> None:
    assert keyword_choice(ghosts, "find and fix") == "coder"
    assert keyword_choice(list(reversed(ghosts)), "find and fix") == "scout"


def test_more_intent_words_outweigh_fewer(ghosts: list[GhostSpec]) -> None:
    assert keyword_choice(ghosts, "find where we read, then fix") == "scout"


def test_last_user_text_reads_the_last_user_turn_and_its_text_parts() -> None:
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "fix"}, {"type": "image_url"}, 7]},
    ]
    assert last_user_text(messages) == "fix "
    assert last_user_text([{"role": "system", "content": "x"}]) == ""


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("scout", "scout"),
        ("sparks/coder", "coder"),
        ('"Scout".', "scout"),
        ("`coder`\n", "coder"),
        ("I would pick scout for this.", "scout"),
        ("coder or scout", None),
        ("nobody", None),
        ("", None),
    ],
)
def test_llm_answer_must_name_exactly_one_ghost(answer: str, expected: str | None) -> None:
    assert parse_llm_answer(answer, ["coder", "scout"]) == expected


async def test_without_a_model_the_heuristic_decides(ghosts: list[GhostSpec]) -> None:
    decision = await Classifier(ghosts, 1.0).decide(user("explain this"))
    assert (decision.ghost, decision.method) == ("scout", "keyword")


async def test_no_signal_falls_to_the_first_ghost(ghosts: list[GhostSpec]) -> None:
    decision = await Classifier(ghosts, 1.0).decide(user("hello"))
    assert (decision.ghost, decision.method) == ("coder", "default")


async def test_llm_choice_is_cached_per_conversation(ghosts: list[GhostSpec]) -> None:
    calls: list[Any] = []

    async def ask(messages: list[dict[str, str]]) -> str:
        calls.append(messages)
        return "scout"

    classifier = Classifier(ghosts, 1.0)
    first = await classifier.decide(user("fix it"), ask)
    later = await classifier.decide([*user("fix it"), {"role": "user", "content": "more"}], ask)
    assert (first.ghost, first.method) == ("scout", "llm")
    assert (later.ghost, later.method) == ("scout", "cache")
    assert len(calls) == 1


async def test_llm_timeout_falls_back_to_the_heuristic_with_a_note(
    ghosts: list[GhostSpec],
) -> None:
    async def ask(messages: list[dict[str, str]]) -> str:
        await asyncio.sleep(10)
        return "scout"

    decision = await Classifier(ghosts, 0.01).decide(user("fix it"), ask)
    assert (decision.ghost, decision.method) == ("coder", "keyword")
    assert "timed out" in decision.note


async def test_llm_failure_or_nonsense_falls_back_to_the_heuristic(
    ghosts: list[GhostSpec],
) -> None:
    async def broken(messages: list[dict[str, str]]) -> str:
        raise RuntimeError("boom")

    async def nonsense(messages: list[dict[str, str]]) -> str:
        return "a poem"

    classifier = Classifier(ghosts, 1.0)
    failed = await classifier.decide(user("explain"), broken)
    assert (failed.ghost, failed.method, failed.note) == (
        "scout",
        "keyword",
        "llm failed: RuntimeError",
    )
    vague = await classifier.decide(user("where"), nonsense)
    assert (vague.ghost, vague.method) == ("scout", "keyword")
    assert "names no ghost" in vague.note
