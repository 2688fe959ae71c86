"""No chunk is held back waiting for another (issue 11): the first event of a stream reaches
the client before the upstream sends the second, and a usage-less client sees no usage."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import web

from .conftest import AUTH, make_config

CHUNK = {
    "id": "c1",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "m",
    "system_fingerprint": "fp_1",
    "choices": [
        {"index": 0, "delta": {"content": "first"}, "logprobs": None, "finish_reason": None}
    ],
    "usage": None,
}


def sse(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def gated_upstream(first_seen: asyncio.Event) -> web.Application:
    """Sends one chunk, then waits until the test has seen it at the client before the rest."""

    async def chat(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(sse(CHUNK))
        await asyncio.wait_for(first_seen.wait(), 10)
        second = {**CHUNK, "choices": [{**CHUNK["choices"][0], "delta": {"content": " second"}}]}
        finish = {**CHUNK, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        usage = {**CHUNK, "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}
        await response.write(sse(second) + sse(finish) + sse(usage) + b"data: [DONE]\n\n")
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


async def test_the_first_event_reaches_the_client_before_the_upstream_sends_the_second(
    sparks_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    first_seen = asyncio.Event()
    upstream = await aiohttp_server(gated_upstream(first_seen))
    config = make_config(
        tmp_path,
        {"gate": f"http://127.0.0.1:{upstream.port}/v1"},
    )
    client = await sparks_client(config)
    body = {"model": "gate/m", "messages": [{"role": "user", "content": "x"}], "stream": True}
    async with asyncio.timeout(15):
        resp = await client.post("/v1/chat/completions", json=body, headers=AUTH)
        assert resp.status == 200
        first = await resp.content.readline()
        assert json.loads(first[6:])["choices"][0]["delta"]["content"] == "first"
        first_seen.set()  # only now does the upstream send anything else
        rest = (await resp.content.read()).decode()
    events = [line[6:] for line in rest.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert [c["choices"][0]["delta"].get("content") for c in chunks] == [" second", None]
    assert all("usage" not in c for c in chunks)  # the client did not ask for usage
    assert all(c["model"] == "gate/m" for c in chunks)


# One content chunk as each kind of server really sends it (shapes from their streams).
REAL_CHUNKS = {
    "openai": '{"id":"chatcmpl-A1","object":"chat.completion.chunk","created":1733350000,'
    '"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_0ba0d124f1",'
    '"choices":[{"index":0,"delta":{"content":" héllo ✓"},"logprobs":null,"finish_reason":null}],'
    '"usage":null}',
    "vllm": '{"id":"cmpl-9f","object":"chat.completion.chunk","created":1733350000,"model":"Qwen/Qwen3-8B",'
    '"choices":[{"index":0,"delta":{"content":"x"},"logprobs":null,"finish_reason":null,'
    '"stop_reason":null,"token_ids":null}],"usage":null,"prompt_token_ids":null}',
    "ollama": '{"id":"chatcmpl-42","object":"chat.completion.chunk","created":1733350000,'
    '"model":"qwen3:8b","system_fingerprint":"fp_ollama","choices":[{"index":0,'
    '"delta":{"role":"assistant","content":"y"},"finish_reason":null}]}',
    "llamacpp": '{"choices":[{"finish_reason":null,"index":0,"delta":{"content":"z"}}],'
    '"created":1733350000,"id":"chatcmpl-Lc","model":"gguf","system_fingerprint":"b4000-abc",'
    '"object":"chat.completion.chunk","timings":{"prompt_n":1,"predicted_ms":1.5}}',
    "litellm": '{"id":"chatcmpl-ll","created":1733350000,"model":"ollama/qwen3","object":'
    '"chat.completion.chunk","system_fingerprint":null,"choices":[{"index":0,"delta":'
    '{"content":"w","role":"assistant","function_call":null,"tool_calls":null,"audio":null},'
    '"logprobs":null,"finish_reason":null}],"provider_specific_fields":null}',
}


def test_real_server_chunks_pass_through_unchanged_but_model_and_unasked_usage() -> None:
    from sparks.pipeline.relay import ChunkRelay

    for style, text in REAL_CHUNKS.items():
        for include_usage in (False, True):
            relay = ChunkRelay("sparks-id", include_usage)
            relay.feed(b'{"choices":[{"index":0,"delta":{"content":"settle"}}]}')
            out = relay.feed(text.encode())
            assert out is not None and out.startswith(b"data: ") and out.endswith(b"\n\n")
            expected = json.loads(text)
            expected["model"] = "sparks-id"
            if not include_usage:
                expected.pop("usage", None)
            assert json.loads(out[6:]) == expected, style
            assert list(json.loads(out[6:])) == list(expected), style  # key order kept
