"""Smoke tests for scripts/fake_upstream.py, the upstream double the gateway tests run against."""

import asyncio
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fake_upstream.py"


def load_fake_upstream() -> ModuleType:
    """Import the script by path: scripts/ is not a package."""
    spec = importlib.util.spec_from_file_location("fake_upstream", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fake = load_fake_upstream()


@pytest.fixture
async def client(aiohttp_client: Any) -> Any:
    return await aiohttp_client(fake.create_app())


def chat_body(text: str = "hello there", **extra: Any) -> dict[str, Any]:
    return {"model": "fake-model", "messages": [{"role": "user", "content": text}], **extra}


async def sse_events(resp: aiohttp.ClientResponse) -> list[Any]:
    """Parsed `data:` payloads in order; `[DONE]` stays a string."""
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    text = await resp.text()
    payloads = [line[len("data: ") :] for line in text.split("\n\n") if line]
    return [p if p == "[DONE]" else json.loads(p) for p in payloads]


def content_deltas(events: list[Any]) -> list[str]:
    return [
        e["choices"][0]["delta"]["content"]
        for e in events
        if isinstance(e, dict) and e["choices"] and e["choices"][0]["delta"].get("content")
    ]


async def test_models_list_names_owner(client: Any) -> None:
    resp = await client.get("/v1/models")
    assert resp.status == 200
    body = await resp.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["fake-model", "fake-small"]
    assert {m["owned_by"] for m in body["data"]} == {"fake"}


async def test_non_stream_echoes_last_user_message(client: Any) -> None:
    body = chat_body(messages=[{"role": "user", "content": [{"type": "text", "text": "hi you"}]}])
    resp = await client.post("/v1/chat/completions", json=body)
    assert resp.status == 200
    data = await resp.json()
    assert data["object"] == "chat.completion"
    assert data["model"] == "fake-model"
    assert data["choices"][0]["message"] == {"role": "assistant", "content": "echo: hi you"}
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}


async def test_stream_usage_chunk_only_when_asked(client: Any) -> None:
    resp = await client.post("/v1/chat/completions", json=chat_body(stream=True))
    events = await sse_events(resp)
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(content_deltas(events)) == "echo: hello there"
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    assert events[-1] == "[DONE]"
    assert not any("usage" in e for e in events if isinstance(e, dict))

    options = {"include_usage": True}
    resp = await client.post(
        "/v1/chat/completions", json=chat_body(stream=True, stream_options=options)
    )
    events = await sse_events(resp)
    assert events[-2]["choices"] == []
    assert events[-2]["usage"]["completion_tokens"] == 3
    assert events[-1] == "[DONE]"


async def test_stream_chunks_gives_exactly_n_content_chunks(client: Any) -> None:
    body = chat_body(stream=True, fake={"reply": "one two three", "chunks": 50})
    events = await sse_events(await client.post("/v1/chat/completions", json=body))
    assert len(content_deltas(events)) == 50
    body = chat_body(stream=True, fake={"reply": "a b c d e f g", "chunks": 3})
    events = await sse_events(await client.post("/v1/chat/completions", json=body))
    assert content_deltas(events) == ["a b c", " d e", " f g"]


async def test_stream_tool_calls_like_openai(client: Any) -> None:
    calls = [{"name": "read_file", "arguments": {"path": "README.md"}}]
    body = chat_body(stream=True, fake={"tool_calls": calls})
    events = await sse_events(await client.post("/v1/chat/completions", json=body))
    deltas = [e["choices"][0]["delta"]["tool_calls"][0] for e in events[1:-2]]
    assert deltas[0] == {
        "id": "call_1",
        "type": "function",
        "function": {"name": "read_file", "arguments": ""},
        "index": 0,
    }
    assert all(set(d) == {"index", "function"} for d in deltas[1:])
    arguments = "".join(d["function"]["arguments"] for d in deltas)
    assert json.loads(arguments) == {"path": "README.md"}
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"


async def test_status_control_answers_openai_error(client: Any) -> None:
    resp = await client.post("/v1/chat/completions", json=chat_body(fake={"status": 503}))
    assert resp.status == 503
    error = (await resp.json())["error"]
    assert error["type"] == "server_error"
    resp = await client.post("/v1/chat/completions", json=chat_body(model="fail-429"))
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "7"


async def test_unknown_model_is_404_model_not_found(client: Any) -> None:
    resp = await client.post("/v1/chat/completions", json=chat_body(model="nope"))
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "model_not_found"


async def test_scripted_turns_pop_in_order_with_tool_result(client: Any) -> None:
    resp = await client.post(
        "/_fake/script",
        json={
            "model": "fake-model",
            "turns": [
                {"tool_calls": [{"name": "lookup", "arguments": "{}"}]},
                {"reply": "the tool said {last_tool_result}"},
            ],
        },
    )
    assert (await resp.json())["queued"] == 2
    first = await (await client.post("/v1/chat/completions", json=chat_body())).json()
    message = first["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"][0]["function"]["name"] == "lookup"
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": message["tool_calls"]},
        {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "42"},
    ]
    body = {"model": "fake-model", "messages": messages, "stream": True}
    events = await sse_events(await client.post("/v1/chat/completions", json=body))
    assert "".join(content_deltas(events)) == "the tool said 42"
    third = await (await client.post("/v1/chat/completions", json=chat_body("again"))).json()
    assert third["choices"][0]["message"]["content"] == "echo: again"


async def test_requests_are_recorded(client: Any) -> None:
    headers = {"Authorization": "Bearer upstream-key", "X-Extra": "1"}
    await client.post("/v1/chat/completions", json=chat_body(top_k=3), headers=headers)
    recorded = client.server.app[fake.RECORDED]
    assert len(recorded) == 1
    assert recorded[0].path == "/v1/chat/completions"
    assert recorded[0].json["top_k"] == 3
    assert recorded[0].headers["authorization"] == "Bearer upstream-key"
    listed = await (await client.get("/_fake/requests")).json()
    assert [r["path"] for r in listed] == ["/v1/chat/completions"]
    await client.delete("/_fake/requests")
    assert recorded == []


async def test_require_key_rejects_missing_bearer(aiohttp_client: Any) -> None:
    client = await aiohttp_client(fake.create_app(require_key="sk-up"))
    assert (await client.get("/v1/models")).status == 401
    resp = await client.get("/v1/models", headers={"Authorization": "Bearer sk-up"})
    assert resp.status == 200


async def test_fail_after_chunks_breaks_the_stream(client: Any) -> None:
    body = chat_body(stream=True, fake={"reply": "a b c d", "fail_after_chunks": 2})
    resp = await client.post("/v1/chat/completions", json=body)
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()


async def test_hang_ends_soon_after_client_leaves(client: Any) -> None:
    body = {"model": "hang", "messages": []}
    with pytest.raises(TimeoutError):
        await client.post("/v1/chat/completions", json=body, timeout=aiohttp.ClientTimeout(0.1))
    await asyncio.sleep(0.2)
    handlers = [t for t in asyncio.all_tasks() if "_handle_request" in repr(t.get_coro())]
    assert handlers == []


async def test_embeddings_and_transcription(client: Any) -> None:
    body = {"model": "fake-model", "input": ["a", "b", "a"]}
    data = (await (await client.post("/v1/embeddings", json=body)).json())["data"]
    assert len(data[0]["embedding"]) == 8
    assert data[0]["embedding"] == data[2]["embedding"] != data[1]["embedding"]
    form = aiohttp.FormData()
    form.add_field("model", "fake-small")
    form.add_field("file", b"\0" * 100_000, filename="a.wav")
    resp = await client.post("/v1/audio/transcriptions", data=form)
    assert await resp.json() == {"text": "transcribed 100000 bytes"}
    record = client.server.app[fake.RECORDED][-1]
    assert record.form_fields == ["model", "file"]
    assert record.form_values == {"model": "fake-small"}
