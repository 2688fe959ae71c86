"""The Anthropic Messages front through the real app, the fake upstream and the official
`anthropic` SDK (SPEC §9.2): plain and streamed answers, tools both ways, thinking, usage,
count_tokens, ghosts, Anthropic-shaped errors and a native `api = "anthropic"` backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from sparks.config import parse_config
from sparks.server import messages as messages_front

from .conftest import API_KEY, free_port, read_events, upstream_url

USER = [{"role": "user", "content": "hello"}]
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def config(
    tmp_path: Path, upstream: Any, backends: dict[str, Any] | None = None, **sections: Any
) -> Any:
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    (ws / "notes.txt").write_text("hello\n")
    ghosts = [
        {"name": "scout", "description": "Explores files.", "workspace": str(ws), "read_only": True, "tools": ["read_file", "list_dir"]}
    ]  # fmt: skip
    return parse_config(
        {
            "observer": {"path": str(tmp_path / "events.jsonl"), "console": False},
            "backends": {"up": {"base_url": upstream_url(upstream)}, **(backends or {})},
            "ghosts": ghosts,
            "ghost_defaults": {"model": "up/fake-model", "sandbox": "none"},
            **sections,
        },
        None,
    )


@pytest.fixture
async def sdk(sparks_client: Any, upstream: Any, tmp_path: Path) -> AsyncIterator[Any]:
    client = await sparks_client(config(tmp_path, upstream))
    async with anthropic.AsyncAnthropic(
        base_url=str(client.make_url("")), api_key=API_KEY, max_retries=0
    ) as sdk:
        sdk.http = client  # the aiohttp test client, for raw requests
        yield sdk


def received(tmp_path: Path, path: str = "/v1/messages") -> list[dict[str, Any]]:
    return [
        e
        for e in read_events(tmp_path / "events.jsonl")
        if e["event"] == "request.received" and e["path"] == path
    ]


def upstream_bodies(upstream: Any, fake: Any) -> list[dict[str, Any]]:
    return [r.json for r in upstream.app[fake.RECORDED] if r.path != "/v1/models"]


# --- the anthropic SDK against a backend model -------------------------------------------


async def test_create_with_system_prompt_and_usage(
    sdk: Any, upstream: Any, fake: Any, tmp_path: Path
) -> None:
    message = await sdk.messages.create(
        model="up/fake-model",
        max_tokens=64,
        system="Be brief.",
        messages=USER,
        stop_sequences=["END"],
    )
    assert message.content[0].type == "text" and message.content[0].text == "echo: hello"
    assert message.model == "up/fake-model" and message.role == "assistant"
    assert message.stop_reason == "end_turn" and message.id.startswith("msg_")
    assert message.usage.input_tokens > 0 and message.usage.output_tokens == 2
    sent = upstream_bodies(upstream, fake)[-1]
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["max_tokens"] == 64 and sent["stop"] == ["END"] and sent["model"] == "fake-model"
    [event] = received(tmp_path)
    assert event["api"] == "messages" and event["model"] == "up/fake-model"
    done = [e for e in read_events(tmp_path / "events.jsonl") if e["event"] == "request.completed"]
    assert done[-1]["usage"]["completion_tokens"] == 2


async def test_stream_event_sequence_and_final_message(sdk: Any) -> None:
    stream = await sdk.messages.create(
        model="up/fake-model", max_tokens=64, messages=USER, stream=True
    )
    seen = [event async for event in stream]
    names = [e.type for e in seen]
    assert names == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert "".join(e.delta.text for e in seen if e.type == "content_block_delta") == "echo: hello"
    assert seen[0].message.model == "up/fake-model"
    assert seen[-2].delta.stop_reason == "end_turn" and seen[-2].usage.output_tokens == 2
    async with sdk.messages.stream(model="up/fake-model", max_tokens=64, messages=USER) as helper:
        final = await helper.get_final_message()
    assert final.content[0].text == "echo: hello" and final.usage.output_tokens == 2


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_use_then_tool_result_round_trip(
    sdk: Any, upstream: Any, fake: Any, stream: bool
) -> None:
    """The upstream's odd tool-call id comes back as a valid tool_use id and returns to the
    upstream unchanged, with the tool's result, in the follow-up request."""
    odd_id = "functions.get_weather:0"
    ask = {"tool_calls": [{"id": odd_id, "name": "get_weather", "arguments": {"city": "Paris"}}]}
    params = {"model": "up/fake-model", "max_tokens": 64, "tools": [WEATHER]}
    if stream:
        async with sdk.messages.stream(**params, messages=USER, extra_body={"fake": ask}) as s:
            first = await s.get_final_message()
    else:
        first = await sdk.messages.create(**params, messages=USER, extra_body={"fake": ask})
    assert first.stop_reason == "tool_use"
    [use] = [b for b in first.content if b.type == "tool_use"]
    assert use.name == "get_weather" and use.input == {"city": "Paris"}
    assert use.id != odd_id and use.id.replace("_", "").replace("-", "").isalnum()
    history = [
        *USER,
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}],
        },
    ]
    second = await sdk.messages.create(
        **params, messages=history, extra_body={"fake": {"reply": "It is {last_tool_result}."}}
    )
    assert second.content[0].text == "It is sunny." and second.stop_reason == "end_turn"
    sent = upstream_bodies(upstream, fake)[-1]
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["messages"][1]["tool_calls"][0]["id"] == odd_id
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": odd_id, "content": "sunny"}


async def test_thinking_maps_to_reasoning_and_comes_back_as_thinking(
    sdk: Any, upstream: Any, fake: Any
) -> None:
    message = await sdk.messages.create(
        model="up/fake-model",
        max_tokens=20000,
        messages=USER,
        thinking={"type": "enabled", "budget_tokens": 8000},
        extra_body={"fake": {"reasoning": "let me think"}},
    )
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "let me think"
    assert upstream_bodies(upstream, fake)[-1]["reasoning_effort"] == "medium"
    stream = await sdk.messages.create(
        model="up/fake-model", max_tokens=64, messages=USER, stream=True,
        extra_body={"fake": {"reasoning": "deep thought"}},
    )  # fmt: skip
    deltas = [e.delta for e in [e async for e in stream] if e.type == "content_block_delta"]
    assert "".join(d.thinking for d in deltas if d.type == "thinking_delta") == "deep thought"


async def test_count_tokens_estimate(sdk: Any, tmp_path: Path) -> None:
    small = await sdk.messages.count_tokens(model="up/fake-model", messages=USER)
    big = await sdk.messages.count_tokens(
        model="up/fake-model", system="x" * 4000, messages=USER, tools=[WEATHER]
    )
    assert 0 < small.input_tokens < 50 and big.input_tokens > 1000
    ghost = await sdk.messages.count_tokens(model="sparks/scout", messages=USER)
    assert ghost.input_tokens == small.input_tokens
    assert received(tmp_path, "/v1/messages/count_tokens")[0]["api"] == "messages"


# --- ghosts -------------------------------------------------------------------------------


async def test_scout_answers_with_client_tools_merged(
    sdk: Any, upstream: Any, fake: Any, tmp_path: Path
) -> None:
    """A ghost takes Claude Code's tools (SPEC §5.1 merge); a server tool is left out, noted."""
    fake.queue_script(upstream.app, "fake-model", [{"reply": "scout says hi"}])
    server_tool = {"type": "web_search_20250305", "name": "web_search"}
    message = await sdk.messages.create(
        model="sparks/scout", max_tokens=64, messages=USER, tools=[WEATHER, server_tool],
        system="You are helpful.",
    )  # fmt: skip
    assert message.content[-1].text == "scout says hi" and message.model == "sparks/scout"
    assert message.usage.output_tokens > 0
    assert received(tmp_path)[-1]["dropped_tools"] == ["web_search_20250305"]
    offered = [t["function"]["name"] for t in upstream_bodies(upstream, fake)[-1]["tools"]]
    assert "get_weather" in offered and "read_file" in offered


async def test_scout_streams_its_tool_progress_as_thinking(
    sdk: Any, upstream: Any, fake: Any
) -> None:
    turns = [
        {"tool_calls": [{"name": "list_dir", "arguments": {"path": "."}}]},
        {"reply": "found notes"},
    ]
    fake.queue_script(upstream.app, "fake-model", turns)
    stream = await sdk.messages.create(
        model="sparks/scout", max_tokens=64, messages=USER, stream=True
    )
    seen = [e async for e in stream]
    blocks = [e.content_block.type for e in seen if e.type == "content_block_start"]
    assert blocks == ["thinking", "text"]
    thinking = "".join(
        e.delta.thinking
        for e in seen
        if e.type == "content_block_delta" and e.delta.type == "thinking_delta"
    )
    assert "list_dir" in thinking
    assert seen[-1].type == "message_stop" and seen[-2].delta.stop_reason == "end_turn"


async def test_pings_while_nothing_arrives(sdk: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(messages_front, "PING_INTERVAL_S", 0.05)
    body = {"model": "up/fake-model", "max_tokens": 9, "messages": USER, "stream": True}
    body["fake"] = {"chunk_delay_ms": 300}
    response = await sdk.http.post("/v1/messages", json=body, headers={"x-api-key": API_KEY})
    text = await response.text()
    assert response.status == 200 and "event: ping" in text
    assert (
        text.index("event: message_start")
        < text.index("event: ping")
        < text.index("event: message_stop")
    )


# --- errors -------------------------------------------------------------------------------


async def test_authentication_error_and_public_head_root(sdk: Any) -> None:
    async with anthropic.AsyncAnthropic(
        base_url=str(sdk.base_url), api_key="wrong", max_retries=0
    ) as bad:
        with pytest.raises(anthropic.AuthenticationError) as caught:
            await bad.messages.create(model="up/fake-model", max_tokens=9, messages=USER)
    assert caught.value.body["error"]["type"] == "authentication_error"
    assert caught.value.body["type"] == "error"
    assert (await sdk.http.head("/")).status == 200
    bearer = anthropic.AsyncAnthropic(base_url=str(sdk.base_url), auth_token=API_KEY, max_retries=0)
    async with bearer:
        ok = await bearer.messages.create(model="up/fake-model", max_tokens=9, messages=USER)
    assert ok.content[0].text == "echo: hello"


async def test_not_found_and_invalid_request_errors(sdk: Any) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        await sdk.messages.create(model="sparks/nope", max_tokens=9, messages=USER)
    assert missing.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError) as bad:
        await sdk.messages.create(
            model="up/fake-model",
            max_tokens=9,
            messages=[{"role": "user", "content": [{"type": "audio"}]}],
        )
    assert bad.value.body["error"]["type"] == "invalid_request_error"
    assert "messages[0].content[0]" in bad.value.body["error"]["message"]
    response = await sdk.http.post("/v1/messages/nope", json={}, headers={"x-api-key": API_KEY})
    body = await response.json()
    assert response.status == 404 and body["error"]["type"] == "not_found_error"
    response = await sdk.http.post(
        "/v1/messages?beta=true", data=b"{", headers={"x-api-key": API_KEY}
    )
    assert (
        response.status == 400
        and (await response.json())["error"]["type"] == "invalid_request_error"
    )


async def test_unreachable_backend_is_overloaded_and_broken_stream_is_an_error_event(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    cfg = config(
        tmp_path,
        upstream,
        backends={"gone": {"base_url": f"http://127.0.0.1:{free_port()}/v1", "models": ["m"]}},
    )
    client = await sparks_client(cfg)
    headers = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
    response = await client.post(
        "/v1/messages", json={"model": "gone/m", "max_tokens": 9, "messages": USER}, headers=headers
    )
    assert response.status == 503
    assert (await response.json())["error"]["type"] == "overloaded_error"
    body = {"model": "up/fake-model", "max_tokens": 9, "messages": USER, "stream": True}
    body["fake"] = {"reply": "one two three four", "fail_after_chunks": 2}
    response = await client.post("/v1/messages", json=body, headers=headers)
    text = await response.text()
    assert response.status == 200 and "event: content_block_delta" in text
    assert text.rstrip().split("\n")[-2] == "event: error" and "message_stop" not in text
    assert '"type":"api_error"' in text


async def test_rate_limit_error_is_anthropic_shaped(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    limited = {"requests_per_minute": 1, "burst": 1}
    client = await sparks_client(config(tmp_path, upstream, openai_api=limited))
    body = {"model": "up/fake-model", "max_tokens": 9, "messages": USER}
    first = await client.post("/v1/messages", json=body, headers={"x-api-key": API_KEY})
    second = await client.post("/v1/messages", json=body, headers={"x-api-key": API_KEY})
    assert first.status == 200 and second.status == 429
    assert int(second.headers["Retry-After"]) >= 1
    error = await second.json()
    assert error["type"] == "error" and set(error["error"]) == {"type", "message"}
    assert error["error"]["type"] == "rate_limit_error"


# --- a native api = "anthropic" backend ---------------------------------------------------


async def test_native_backend_gets_the_request_as_sent(
    sparks_client: Any, upstream: Any, fake: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    native = {
        "claude": {
            "base_url": upstream_url(upstream),
            "api": "anthropic",
            "models": ["fake-model"],
            "api_key_env": "CLAUDE_NATIVE_KEY",
        }
    }
    monkeypatch.setenv("CLAUDE_NATIVE_KEY", "sk-ant-native-0123")
    client = await sparks_client(config(tmp_path, upstream, backends=native))
    async with anthropic.AsyncAnthropic(
        base_url=str(client.make_url("")), api_key=API_KEY, max_retries=0
    ) as sdk:
        message = await sdk.messages.create(
            model="claude/fake-model", max_tokens=9, messages=USER, extra_body={"top_k": 3}
        )
        stream = await sdk.messages.create(
            model="claude/fake-model", max_tokens=9, messages=USER, stream=True
        )
        names = [e.type async for e in stream]
        counted = await sdk.messages.count_tokens(
            model="claude/fake-model", messages=USER, tools=[WEATHER]
        )
        with pytest.raises(anthropic.APIStatusError) as cut:
            broken = await sdk.messages.create(
                model="claude/fake-model", max_tokens=9, messages=USER, stream=True,
                extra_body={"fake": {"stream_error": True}},
            )  # fmt: skip
            [e async for e in broken]
    assert message.content[0].text == "echo: hello" and message.model == "claude/fake-model"
    assert names[0] == "message_start" and names[-1] == "message_stop" and "ping" not in names
    assert counted.input_tokens == 1001  # the fake's own count: one word, plus 1000 for tools
    assert cut.value.body["error"]["type"] == "overloaded_error"
    sent = [r for r in upstream.app[fake.RECORDED] if r.path.startswith("/v1/messages")]
    assert sent[0].json["top_k"] == 3 and sent[0].json["model"] == "fake-model"
    # Anthropic's own API takes its key as x-api-key with a version header, not a bearer token
    assert sent[0].headers["x-api-key"] == "sk-ant-native-0123"
    assert sent[0].headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent[0].headers
    assert sent[2].path == "/v1/messages/count_tokens"
    done = [e for e in read_events(tmp_path / "events.jsonl") if e["event"] == "request.completed"]
    assert done[0]["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    assert done[1]["usage"]["completion_tokens"] == 2


async def test_native_stream_without_message_stop_ends_with_an_error_event(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    native = {
        "claude": {"base_url": upstream_url(upstream), "api": "anthropic", "models": ["fake-model"]}
    }
    client = await sparks_client(config(tmp_path, upstream, backends=native))
    body = {"model": "claude/fake-model", "max_tokens": 9, "messages": USER, "stream": True}
    body["fake"] = {"no_message_stop": True}
    response = await client.post("/v1/messages", json=body, headers={"x-api-key": API_KEY})
    text = await response.text()
    assert "event: message_delta" in text and "event: message_stop" not in text
    assert (
        "event: error" in text and "message_stop" in text.split("event: error")[1]
    )  # the message names it
