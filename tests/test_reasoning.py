"""Reasoning mapping per dialect and normalization, including think tags split anywhere."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparks.backends.reasoning import (
    DeltaNormalizer,
    ThinkSplitter,
    apply_reasoning,
    default_dialect,
    normalize_message,
    split_leading_think,
)

BASE = {"model": "m", "messages": []}


@pytest.mark.parametrize(
    ("request_fields", "dialect", "expected"),
    [
        ({"reasoning_effort": "high"}, "openai", {"reasoning_effort": "high"}),
        ({"enable_thinking": False}, "openai", {"reasoning_effort": "none"}),
        (
            {"enable_thinking": True, "reasoning_effort": "none"},
            "openai",
            {"reasoning_effort": "medium"},
        ),
        (
            {"reasoning_effort": "low"},
            "chat_template_kwargs",
            {"chat_template_kwargs": {"enable_thinking": True}},
        ),
        (
            {"enable_thinking": False, "reasoning_effort": "high"},
            "chat_template_kwargs",
            {"chat_template_kwargs": {"enable_thinking": False}},
        ),
        ({"reasoning_effort": "none"}, "ollama", {"think": False}),
        ({"enable_thinking": True}, "ollama", {"think": True}),
        ({"reasoning_effort": "high", "enable_thinking": True}, "none", {}),
    ],
)
def test_reasoning_fields_map_to_the_model_dialect(
    request_fields: dict, dialect: str, expected: dict
) -> None:
    assert apply_reasoning({**BASE, **request_fields}, dialect) == {**BASE, **expected}


def test_existing_chat_template_kwargs_are_kept() -> None:
    body = {**BASE, "chat_template_kwargs": {"x": 1}, "enable_thinking": True}
    mapped = apply_reasoning(body, "chat_template_kwargs")
    assert mapped["chat_template_kwargs"] == {"x": 1, "enable_thinking": True}
    assert body["chat_template_kwargs"] == {"x": 1}  # the client's body is not mutated


def test_no_reasoning_fields_leaves_body_identical() -> None:
    assert apply_reasoning(BASE, "ollama") is BASE


@pytest.mark.parametrize(
    ("name", "url", "dialect"),
    [
        ("ollama", "http://127.0.0.1:11434/v1", "ollama"),
        ("vllm", "http://127.0.0.1:8000/v1", "chat_template_kwargs"),
        ("llamacpp", "http://127.0.0.1:8080/v1", "chat_template_kwargs"),
        ("openai", "https://api.openai.com/v1", "openai"),
        ("openrouter", "https://openrouter.ai/api/v1", "openai"),
    ],
)
def test_default_dialect_by_backend_kind(name: str, url: str, dialect: str) -> None:
    assert default_dialect(name, url) == dialect


@pytest.mark.parametrize(
    ("message", "reasoning", "content"),
    [
        ({"content": "<think>hmm</think>\n\nanswer"}, "hmm", "answer"),
        ({"content": "  <think>a</think>b"}, "a", "b"),
        ({"content": "plain <think>not leading</think>"}, None, "plain <think>not leading</think>"),
        ({"content": "x", "reasoning": "r"}, "r", "x"),
        ({"content": "x", "reasoning_content": "r"}, "r", "x"),
        ({"content": "<think>never closed"}, "never closed", ""),
    ],
)
def test_normalize_message_moves_reasoning_out_of_content(
    message: dict, reasoning: str | None, content: str
) -> None:
    normalize_message(message)
    assert message.get("reasoning_content") == reasoning
    assert message["content"] == content
    assert "reasoning" not in message


SAMPLE = "\n<think>Let me think about </thi this.\nOK.</think>\n\nThe answer is <b>42</b>."


def run_stream(pieces: list[str]) -> tuple[str, str]:
    splitter = ThinkSplitter()
    reasoning = content = ""
    for piece in pieces:
        r, c = splitter.feed(piece)
        reasoning += r
        content += c
    r, c = splitter.flush()
    return reasoning + r, content + c


def test_every_single_split_point_gives_the_same_result() -> None:
    expected_reasoning, expected_content = split_leading_think(SAMPLE)
    for cut in range(len(SAMPLE) + 1):
        assert run_stream([SAMPLE[:cut], SAMPLE[cut:]]) == (expected_reasoning, expected_content)


def test_every_pair_of_split_points_gives_the_same_result() -> None:
    expected = split_leading_think(SAMPLE)
    for first in range(0, len(SAMPLE) + 1, 3):
        for second in range(first, len(SAMPLE) + 1, 2):
            pieces = [SAMPLE[:first], SAMPLE[first:second], SAMPLE[second:]]
            assert run_stream(pieces) == expected


def test_character_by_character_stream() -> None:
    assert run_stream(list(SAMPLE)) == split_leading_think(SAMPLE)


text_piece = st.sampled_from(["<think>", "</think>", "<", "/", "think", ">", "\n", " ", "a", "é"])


@settings(max_examples=400, deadline=None)
@given(
    parts=st.lists(text_piece, max_size=25),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=6),
)
def test_streamed_normalization_equals_whole_normalization(
    parts: list[str], cuts: list[int]
) -> None:
    text = "".join(parts)
    points = sorted({min(c, len(text)) for c in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(text[start:point])
        start = point
    pieces.append(text[start:])
    reasoning, content = split_leading_think(text)
    assert run_stream(pieces) == (reasoning or "", content)


def test_delta_normalizer_renames_reasoning_and_splits_per_choice() -> None:
    normalizer = DeltaNormalizer()
    chunk = {
        "choices": [
            {"index": 0, "delta": {"content": "<thi"}},
            {"index": 1, "delta": {"reasoning": "r1", "content": "plain"}},
        ]
    }
    normalizer.normalize_chunk(chunk)
    assert chunk["choices"][0]["delta"] == {"content": ""}
    assert chunk["choices"][1]["delta"] == {"reasoning_content": "r1", "content": "plain"}
    nxt = {"choices": [{"index": 0, "delta": {"content": "nk>why</think>because"}}]}
    normalizer.normalize_chunk(nxt)
    assert nxt["choices"][0]["delta"] == {"content": "because", "reasoning_content": "why"}
