"""The chunk relay and the one SSE reader (SPEC §4.5), pure: bytes in, events or StreamBroken out."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparks.pipeline.relay import ChunkRelay
from sparks.pipeline.sse import MAX_LINE_BYTES, StreamBroken, data_payloads, parse_chunk

USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> bytes:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "upstream-name",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
    }
    body.update(extra)
    return json.dumps(body).encode()


def event(out: bytes | None) -> dict[str, Any]:
    assert out is not None and out.startswith(b"data: ") and out.endswith(b"\n\n")
    return json.loads(out[6:])


def relay_all(relay: ChunkRelay, payloads: Iterable[bytes]) -> list[dict[str, Any]]:
    events = [relay.feed(p) for p in payloads]
    events.append(relay.finish())
    return [event(e) for e in events if e is not None]


def text_of(events: list[dict[str, Any]], field: str) -> str:
    return "".join(
        c["delta"].get(field) or "" for e in events for c in e["choices"] if "delta" in c
    )


# ChunkRelay


def test_model_is_rewritten_to_the_sparks_id() -> None:
    out = event(ChunkRelay("up/m", False).feed(chunk({"content": "hi"})))
    assert out["model"] == "up/m"
    assert out["choices"][0]["delta"] == {"content": "hi"}


def test_a_chunk_without_model_is_not_given_one() -> None:
    out = event(ChunkRelay("up/m", False).feed(b'{"choices": []}'))
    assert out == {"choices": []}


def test_usage_is_captured_and_the_usage_chunk_stripped_when_not_asked() -> None:
    relay = ChunkRelay("up/m", include_usage=False)
    assert relay.feed(json.dumps({"id": "x", "choices": [], "usage": USAGE}).encode()) is None
    assert relay.usage == USAGE


def test_usage_chunk_with_an_empty_delta_choice_is_dropped_whole() -> None:
    """LiteLLM puts `choices: [{index: 0, delta: {}}]` on its usage chunk; the client that did
    not ask for usage must not see an extra empty chunk after the finish chunk."""
    relay = ChunkRelay("up/m", include_usage=False)
    usage_chunk = json.dumps({"choices": [{"index": 0, "delta": {}}], "usage": USAGE}).encode()
    assert relay.feed(usage_chunk) is None
    assert relay.usage == USAGE


def test_usage_chunk_with_null_finish_and_logprobs_is_dropped_whole() -> None:
    relay = ChunkRelay("up/m", include_usage=False)
    assert relay.feed(chunk({}, None, usage=USAGE, system_fingerprint="fp")) is None
    assert relay.usage == USAGE


def test_usage_riding_on_a_content_chunk_is_removed_but_the_content_kept() -> None:
    relay = ChunkRelay("up/m", include_usage=False)
    out = event(relay.feed(chunk({"content": "tail"}, "stop", usage=USAGE)))
    assert "usage" not in out
    assert out["choices"][0]["delta"] == {"content": "tail"}
    assert relay.usage == USAGE


def test_null_usage_on_ordinary_chunks_is_not_captured() -> None:
    relay = ChunkRelay("up/m", include_usage=False)
    out = event(relay.feed(chunk({"content": "a"}, usage=None)))
    assert "usage" not in out
    assert relay.usage is None


def test_usage_chunk_is_kept_when_the_client_asked() -> None:
    relay = ChunkRelay("up/m", include_usage=True)
    out = event(relay.feed(json.dumps({"model": "x", "choices": [], "usage": USAGE}).encode()))
    assert out == {"model": "up/m", "choices": [], "usage": USAGE}
    assert relay.usage == USAGE


def test_reasoning_field_becomes_reasoning_content() -> None:
    out = event(ChunkRelay("up/m", False).feed(chunk({"reasoning": "hmm"})))
    assert out["choices"][0]["delta"] == {"reasoning_content": "hmm"}


@pytest.mark.parametrize(
    "pieces",
    [
        ["<think>plan</think>answer"],
        ["<th", "ink>pl", "an</th", "ink>", "answer"],
        ["  <", "think", ">", "plan", "<", "/think>\n\nans", "wer"],
    ],
)
def test_think_tags_split_across_chunks_become_reasoning(pieces: list[str]) -> None:
    events = relay_all(ChunkRelay("up/m", False), [chunk({"content": p}) for p in pieces])
    assert text_of(events, "reasoning_content") == "plan"
    assert text_of(events, "content") == "answer"


def test_finish_flushes_an_unclosed_think_block_as_reasoning() -> None:
    relay = ChunkRelay("up/m", False)
    relay.feed(chunk({"content": "<think>still thinking</thi"}))
    tail = event(relay.finish())
    assert tail["model"] == "up/m" and tail["id"] == "chatcmpl-1"
    assert tail["choices"] == [
        {"index": 0, "delta": {"reasoning_content": "</thi"}, "finish_reason": None}
    ]


def test_finish_flushes_a_held_partial_open_tag_as_content() -> None:
    relay = ChunkRelay("up/m", False)
    relay.feed(chunk({"content": "<thi"}))
    assert event(relay.finish())["choices"][0]["delta"] == {"content": "<thi"}


def test_finish_is_none_when_nothing_is_held() -> None:
    relay = ChunkRelay("up/m", False)
    relay.feed(chunk({"content": "plain"}))
    assert relay.finish() is None


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[1, 2]",
        b'"text"',
        b"null",
        b'{"choices": [1]}',
        b'{"choices": "abc"}',
        b'{"choices": [{"delta": "abc"}]}',
        b'{"choices": [{"delta": {"content": "x"}, "index": [0]}]}',
        b'{"choices": [{"index": {}, "delta": {"content": "x"}}]}',
        b'{"usage": 7}',
        b'{"error": {"message": "overloaded"}}',
        b'{"choices": [], "error": "boom"}',
        b"[" * 200 + b"]" * 200,
        b'{"choices": [{"delta": {"content": "x"}}], "x": ' + b"[" * 200 + b"]" * 200 + b"}",
    ],
)
def test_malformed_chunk_raises_stream_broken(payload: bytes) -> None:
    with pytest.raises(StreamBroken):
        ChunkRelay("up/m", False).feed(payload)


@pytest.mark.parametrize("index", [b"null", b'"a"', b"0.5", b"[0]", b"1e400", b"true"])
def test_odd_choice_indexes_break_the_stream_not_finish(index: bytes) -> None:
    """Think-tag text held under index 0 and an odd one: finish() sorts them, and must say
    StreamBroken (a clean error event for the client), never raise TypeError."""
    relay = ChunkRelay("up/m", False)
    relay.feed(b'{"choices": [{"index": 0, "delta": {"content": "<thi"}}]}')
    try:
        relay.feed(b'{"choices": [{"index": ' + index + b', "delta": {"content": "<th"}}]}')
        relay.finish()
    except StreamBroken:
        pass


JSON_LEAF = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)
FIELDS = st.sampled_from(["reasoning", "reasoning_content", "role", "tool_calls"])
TEXT = st.sampled_from(["<think>", "</think>", "<th", "</th", " ", "x"]) | JSON
DELTA = st.fixed_dictionaries({"content": TEXT}) | st.dictionaries(FIELDS, TEXT)
CHOICE = st.fixed_dictionaries(
    {},
    optional={
        "index": st.sampled_from([0, None, "a", [0]]),
        "delta": DELTA | JSON,
        "finish_reason": JSON,
        "logprobs": JSON,
    },
)
CHUNK = st.fixed_dictionaries(
    {},
    optional={
        "choices": st.lists(CHOICE, max_size=3) | JSON,
        "usage": st.none() | st.just(USAGE) | JSON,
        "model": JSON,
        "id": JSON,
    },
)


@settings(max_examples=200, deadline=None)
@given(st.lists(CHUNK, max_size=6), st.booleans())
def test_any_chunk_sequence_relays_or_breaks_cleanly(chunks: list[Any], usage: bool) -> None:
    """Whatever the upstream sends, feed() and finish() yield SSE events or raise StreamBroken."""
    relay_or_break(ChunkRelay("up/m", usage), chunks)


FRAGMENT_CHOICE = st.fixed_dictionaries(
    {
        "index": st.sampled_from([0, 1, None, "a", 0.5, True, 10**400, float("inf")]),
        "delta": st.fixed_dictionaries({"content": st.sampled_from(["<th", " ", "</th", "x"])}),
    }
)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.fixed_dictionaries({"choices": st.lists(FRAGMENT_CHOICE, max_size=3)})))
def test_think_fragments_under_odd_indexes_relay_or_break_cleanly(chunks: list[Any]) -> None:
    relay_or_break(ChunkRelay("up/m", False), chunks)


def relay_or_break(relay: ChunkRelay, chunks: list[Any]) -> None:
    try:
        for value in chunks:
            out = relay.feed(json.dumps(value).encode())
            if out is not None:
                event(out)
        tail = relay.finish()
        if tail is not None:
            event(tail)
    except StreamBroken:
        pass


# sse.data_payloads


async def payloads(*pieces: bytes) -> list[bytes]:
    async def source() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    return [p async for p in data_payloads(source())]


async def test_done_ends_the_stream_and_nothing_after_it_is_read() -> None:
    got = await payloads(b'data: {"a":1}\n\ndata: [DONE]\n\ndata: {"b":2}\n\n')
    assert got == [b'{"a":1}']


async def test_missing_done_raises_stream_broken() -> None:
    with pytest.raises(StreamBroken, match=r"before \[DONE\]"):
        await payloads(b'data: {"a":1}\n\n')


async def test_empty_stream_raises_stream_broken() -> None:
    with pytest.raises(StreamBroken):
        await payloads()


async def test_comments_event_id_and_blank_lines_are_skipped() -> None:
    got = await payloads(
        b': keep-alive\n\nevent: message\nid: 7\nretry: 10\ndata: {"a":1}\n\n',
        b"garbage without a field\n\ndata: [DONE]\n\n",
    )
    assert got == [b'{"a":1}']


async def test_lines_split_across_network_chunks_are_joined() -> None:
    got = await payloads(b"da", b'ta: {"a"', b":1}\n", b"\ndata: [DO", b"NE]")
    assert got == [b'{"a":1}']


async def test_crlf_lines_and_missing_space_after_colon_are_accepted() -> None:
    got = await payloads(b'data:{"a":1}\r\n\r\ndata: [DONE]\r\n\r\n')
    assert got == [b'{"a":1}']


async def test_a_line_longer_than_the_limit_raises_stream_broken() -> None:
    piece = b"x" * (1024 * 1024)
    pieces = [b"data: "] + [piece] * (MAX_LINE_BYTES // len(piece) + 1)
    with pytest.raises(StreamBroken, match="longer than"):
        await payloads(*pieces)


@pytest.mark.parametrize(
    "failure",
    [
        aiohttp.ClientPayloadError("cut"),
        aiohttp.ServerDisconnectedError(),
        TimeoutError(),
    ],
)
async def test_a_broken_connection_raises_stream_broken(failure: Exception) -> None:
    async def source() -> AsyncIterator[bytes]:
        yield b'data: {"a":1}\n\n'
        raise failure

    got: list[bytes] = []
    with pytest.raises(StreamBroken):
        async for payload in data_payloads(source()):
            got.append(payload)
    assert got == [b'{"a":1}']


# sse.parse_chunk


def test_parse_chunk_accepts_an_ordinary_chunk() -> None:
    assert parse_chunk(chunk({"content": "a"}))["choices"][0]["delta"] == {"content": "a"}


def test_error_event_names_the_upstream_message() -> None:
    with pytest.raises(StreamBroken, match="overloaded"):
        parse_chunk(b'{"error": {"message": "overloaded", "code": 529}}')


def test_non_json_event_quotes_a_short_excerpt() -> None:
    with pytest.raises(StreamBroken) as caught:
        parse_chunk(b"<html>" + b"x" * 10_000)
    assert len(str(caught.value)) < 200
