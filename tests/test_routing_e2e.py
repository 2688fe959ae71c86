"""Aliases and fallback, cooldown, reasoning across dialects, and the other endpoints, against
several fake upstreams at once (SPEC §4.2–§4.7)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import openai
import pytest

from sparks.config import parse_config

from .conftest import API_KEY, AUTH, free_port, read_events, upstream_url

CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
async def second(fake: Any, aiohttp_server: Any) -> Any:
    return await aiohttp_server(fake.create_app(["secondary"], name="up2"))


def config(tmp_path: Path, backends: dict[str, dict[str, Any]], **sections: Any) -> Any:
    data = {
        "observer": {"path": str(tmp_path / "events.jsonl"), "console": False},
        "backends": backends,
        **sections,
    }
    return parse_config(data, None)


def sdk(client: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=API_KEY, max_retries=0)


async def test_alias_first_500_is_served_by_second_with_header_and_trace(
    sparks_client: Any, upstream: Any, second: Any, tmp_path: Path
) -> None:
    cfg = config(
        tmp_path,
        {"up": {"base_url": upstream_url(upstream)}, "up2": {"base_url": upstream_url(second)}},
        aliases={"smart": ["up/fail-500", "up2/secondary"]},
    )
    client = await sparks_client(cfg)
    resp = await client.post(
        CHAT + "?include_route_trace=true", json={"model": "smart", "messages": HELLO}, headers=AUTH
    )
    body = await resp.json()
    assert resp.status == 200
    assert body["model"] == "up2/secondary"
    assert resp.headers["X-Sparks-Fallback-From"] == "up/fail-500"
    assert resp.headers["X-Sparks-Route"] == "backend:up2/secondary"
    trace = body["route_trace"]
    assert [t["target"] for t in trace] == ["up/fail-500", "up2/secondary"]
    assert trace[0]["status"] == 500 and trace[1]["status"] == 200
    assert set(trace[0]) == {"target", "backend", "upstream_model", "status", "error", "latency_ms"}
    done = [e for e in read_events(tmp_path / "events.jsonl") if e["event"] == "request.completed"]
    assert done[-1]["fallback_from"] == "up/fail-500"
    aliases = await (await client.get("/v1/aliases", headers=AUTH)).json()
    smart = aliases["data"][0]
    assert smart["requests"] == 1 and smart["last_served_by"] == "up2/secondary"


async def test_alias_streams_from_the_second_entry_when_first_is_down(
    sparks_client: Any, second: Any, tmp_path: Path
) -> None:
    cfg = config(
        tmp_path,
        {
            "dead": {"base_url": f"http://127.0.0.1:{free_port()}/v1", "models": ["m"]},
            "up2": {"base_url": upstream_url(second)},
        },
        aliases={"fast": ["dead/m", "up2/secondary"]},
    )
    client = await sparks_client(cfg)
    async with sdk(client) as oa:
        raw = await oa.chat.completions.with_raw_response.create(
            model="fast", messages=HELLO, stream=True
        )
        chunks = [c async for c in raw.parse()]
    assert raw.headers["X-Sparks-Fallback-From"] == "dead/m"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hello"
    providers = {
        p["name"]: p
        for p in (await (await client.get("/v1/providers", headers=AUTH)).json())["data"]
    }
    assert providers["dead"]["reachable"] is False and providers["dead"]["cooldown_s"] > 0
    assert providers["up2"]["key_status"] == "not_required" and providers["up2"]["local"] is True
    # during the cooldown the dead backend is skipped without a connect attempt
    again = await client.post(
        CHAT + "?include_route_trace=true", json={"model": "fast", "messages": HELLO}, headers=AUTH
    )
    trace = (await again.json())["route_trace"]
    assert trace[0]["error"].startswith("skipped: cooling down")


async def test_a_400_from_the_first_entry_is_not_retried(
    sparks_client: Any, upstream: Any, second: Any, tmp_path: Path
) -> None:
    cfg = config(
        tmp_path,
        {"up": {"base_url": upstream_url(upstream)}, "up2": {"base_url": upstream_url(second)}},
        aliases={"smart": ["up/fail-400", "up2/secondary"]},
    )
    client = await sparks_client(cfg)
    resp = await client.post(CHAT, json={"model": "smart", "messages": HELLO}, headers=AUTH)
    assert resp.status == 400
    assert not [r for r in second.app[_fake().RECORDED] if r.path.endswith("completions")]


def _fake() -> Any:
    import sys

    return sys.modules["sparks_scripts_fake_upstream"]


async def test_exhausted_chain_with_429_last_goes_back_with_retry_after(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    cfg = config(
        tmp_path,
        {"up": {"base_url": upstream_url(upstream)}},
        aliases={"busy": ["up/fail-503", "up/fail-429"]},
    )
    client = await sparks_client(cfg)
    resp = await client.post(
        CHAT + "?include_route_trace=true", json={"model": "busy", "messages": HELLO}, headers=AUTH
    )
    assert resp.status == 429 and resp.headers["Retry-After"] == "7"
    error = (await resp.json())["error"]
    assert [t["status"] for t in error["route_trace"]] == [503, 429]


@pytest.mark.parametrize("style", ["reasoning_content", "reasoning", "think_tags"])
async def test_reasoning_arrives_as_reasoning_content_with_clean_content(
    sparks_client: Any, upstream: Any, tmp_path: Path, style: str
) -> None:
    client = await sparks_client(config(tmp_path, {"up": {"base_url": upstream_url(upstream)}}))
    control = {
        "reasoning": "first I think, then I answer",
        "reasoning_style": style,
        "reply": "the answer",
    }
    resp = await client.post(
        CHAT, json={"model": "up/fake-model", "messages": HELLO, "fake": control}, headers=AUTH
    )
    message = (await resp.json())["choices"][0]["message"]
    assert message["reasoning_content"] == "first I think, then I answer"
    assert message["content"] == "the answer" and "reasoning" not in message
    async with sdk(client) as oa:
        stream = await oa.chat.completions.create(
            model="up/fake-model", messages=HELLO, stream=True, extra_body={"fake": control}
        )
        chunks = [c async for c in stream]
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    reasoning = "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas)
    content = "".join(d.content or "" for d in deltas)
    assert reasoning == "first I think, then I answer"
    assert content == "the answer"
    assert all("reasoning" not in (d.model_extra or {}) for d in deltas)


async def test_reasoning_effort_is_mapped_for_the_configured_dialect(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    backend = {
        "base_url": upstream_url(upstream),
        "model_info": {"fake-model": {"thinking": "chat_template_kwargs"}},
    }
    client = await sparks_client(config(tmp_path, {"vllm": backend}))
    await client.post(
        CHAT,
        json={"model": "vllm/fake-model", "messages": HELLO, "reasoning_effort": "none"},
        headers=AUTH,
    )
    sent = upstream.app[_fake().RECORDED][-1].json
    assert sent["chat_template_kwargs"] == {"enable_thinking": False}
    assert "reasoning_effort" not in sent


async def test_other_endpoints_through_the_openai_sdk(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await sparks_client(config(tmp_path, {"up": {"base_url": upstream_url(upstream)}}))
    async with sdk(client) as oa:
        emb = await oa.embeddings.create(model="up/fake-model", input=["a", "b"])
        assert len(emb.data) == 2 and emb.model == "up/fake-model"
        comp = await oa.completions.create(model="up/fake-model", prompt="say hi")
        assert comp.choices[0].text and comp.model == "up/fake-model"
        streamed = await oa.completions.create(model="up/fake-model", prompt="x y", stream=True)
        assert [c async for c in streamed]
        image = await oa.images.generate(model="up/fake-model", prompt="a spark")
        assert image.data[0].b64_json
        speech = await oa.audio.speech.create(model="up/fake-model", voice="alloy", input="hi")
        audio = await speech.aread()
        assert len(audio) == 65536
        upload = io.BytesIO(b"\x00" * 300_000)
        upload.name = "clip.wav"
        text = await oa.audio.transcriptions.create(model="up/fake-model", file=upload)
        assert text.text == "transcribed 300000 bytes"
    recorded = upstream.app[_fake().RECORDED][-1]
    assert recorded.form_values.get("model") == "fake-model"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/embeddings", {"model": "sparks/coder", "input": "x"}),
        ("/v1/completions", {"model": "sparks", "prompt": "x"}),
        ("/v1/audio/speech", {"model": "sparks/scout", "input": "x", "voice": "a"}),
    ],
)
async def test_a_ghost_on_other_endpoints_is_400_unsupported_for_ghost(
    sparks_client: Any, upstream: Any, tmp_path: Path, path: str, body: dict
) -> None:
    client = await sparks_client(config(tmp_path, {"up": {"base_url": upstream_url(upstream)}}))
    resp = await client.post(path, json=body, headers=AUTH)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "unsupported_for_ghost"


async def test_transcription_without_model_is_400_missing_field(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    import aiohttp

    client = await sparks_client(config(tmp_path, {"up": {"base_url": upstream_url(upstream)}}))
    form = aiohttp.FormData()
    form.add_field("file", b"abc", filename="a.wav")
    resp = await client.post("/v1/audio/transcriptions", data=form, headers=AUTH)
    error = (await resp.json())["error"]
    assert resp.status == 400 and error["code"] == "missing_field" and error["param"] == "model"
    _ = json
