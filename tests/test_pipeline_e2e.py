"""The one serving pipeline, end to end: a response that cannot break once started, input
guards, and the defects issue 9 listed (each test here failed on the code before it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from .conftest import AUTH, make_config, post_chat, read_events, upstream_url

CHAT = "/v1/chat/completions"
GOOD_CHUNK = {
    "id": "c1",
    "object": "chat.completion.chunk",
    "model": "fake-model",
    "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}],
}


async def start(sparks_client: Any, upstream: Any, tmp_path: Path, **sections: Any) -> Any:
    return await sparks_client(make_config(tmp_path, {"up": upstream_url(upstream)}, **sections))


def ghost_sections(tmp_path: Path) -> dict[str, Any]:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "notes.txt").write_text("notes\n")
    ghost = {"name": "scout", "description": "Explores files.", "read_only": True}
    return {
        "ghosts": [{**ghost, "workspace": str(workspace), "tools": ["read_file", "list_dir"]}],
        "ghost_defaults": {"model": "up/fake-model", "sandbox": "none"},
    }


def sse_data(text: str) -> list[str]:
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]


def terminal_events(tmp_path: Path) -> list[dict[str, Any]]:
    terminal = ("request.completed", "request.failed", "request.rejected")
    return [e for e in read_events(tmp_path / "events.jsonl") if e["event"] in terminal]


@pytest.mark.parametrize(
    "bad_event",
    [{"choices": [1]}, [1, 2], {"choices": [{"index": 0, "delta": "x"}]}, {"error": "boom"}],
)
async def test_a_failure_after_the_stream_started_ends_it_with_an_error_event_and_done(
    sparks_client: Any, upstream: Any, tmp_path: Path, bad_event: Any
) -> None:
    """Not a second HTTP response in the chunked body (`Invalid character in chunk size`)."""
    client = await start(sparks_client, upstream, tmp_path)
    resp = await post_chat(client, stream=True, fake={"raw_events": [GOOD_CHUNK, bad_event]})
    assert resp.status == 200
    data = sse_data(await resp.text())
    assert json.loads(data[0])["choices"][0]["delta"]["content"] == "Hel"
    assert json.loads(data[-2])["error"]["code"] == "upstream_error"
    assert data[-1] == "[DONE]"
    (terminal,) = terminal_events(tmp_path)
    assert terminal["event"] == "request.failed"
    assert terminal["status"] == 200


async def test_a_stream_that_breaks_before_its_first_event_is_a_plain_json_502(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await start(sparks_client, upstream, tmp_path)
    resp = await post_chat(client, stream=True, fake={"raw_events": ["not json"]})
    assert resp.status == 502
    assert (await resp.json())["error"]["code"] == "upstream_error"
    (terminal,) = terminal_events(tmp_path)
    assert (terminal["event"], terminal["status"]) == ("request.failed", 502)


@pytest.mark.parametrize(
    ("fake_turn", "why"),
    [
        ({"raw_events": [GOOD_CHUNK, [1, 2]]}, "not an object"),
        ({"raw_events": [GOOD_CHUNK, {"error": {"message": "overloaded"}}]}, "overloaded"),
        ({"raw_events": [GOOD_CHUNK], "done": False}, "before [DONE]"),
    ],
)
async def test_a_ghost_never_reports_success_on_a_broken_model_stream(
    sparks_client: Any, upstream: Any, fake: Any, tmp_path: Path, fake_turn: Any, why: str
) -> None:
    client = await start(sparks_client, upstream, tmp_path, **ghost_sections(tmp_path))
    fake.queue_script(upstream.app, "fake-model", [fake_turn])
    resp = await post_chat(client, "sparks/scout", stream=True)
    assert resp.status == 200
    data = sse_data(await resp.text())
    assert data[-1] == "[DONE]"
    error = json.loads(data[-2])["error"]
    assert error["code"] == "upstream_error"
    assert why in error["message"]
    assert not any('"finish_reason":"stop"' in d for d in data)
    (terminal,) = terminal_events(tmp_path)
    assert terminal["event"] == "request.failed"


async def test_a_ghost_model_turn_cut_before_done_is_a_502_when_nothing_was_sent(
    sparks_client: Any, upstream: Any, fake: Any, tmp_path: Path
) -> None:
    client = await start(sparks_client, upstream, tmp_path, **ghost_sections(tmp_path))
    fake.queue_script(upstream.app, "fake-model", [{"raw_events": [], "done": False}])
    resp = await post_chat(client, "sparks/scout", stream=True)
    assert resp.status == 502
    assert "before [DONE]" in (await resp.json())["error"]["message"]


async def test_a_body_nested_100000_levels_deep_is_400_invalid_json(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await start(sparks_client, upstream, tmp_path)
    body = b'{"model": "up/fake-model", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    resp = await client.post(CHAT, data=body, headers={**AUTH, "Content-Type": "application/json"})
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["code"] == "invalid_json"
    assert "nested deeper than 128" in error["message"]


async def test_a_body_nested_just_past_the_limit_is_refused_and_just_under_is_served(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await start(sparks_client, upstream, tmp_path)
    for depth, status in ((126, 200), (200, 400)):
        nested = "[" * depth + "]" * depth
        body = f'{{"model": "up/fake-model", "messages": [{{"role": "user", "content": "hi"}}], "x": {nested}}}'
        resp = await client.post(
            CHAT, data=body.encode(), headers={**AUTH, "Content-Type": "application/json"}
        )
        assert resp.status == status, (depth, await resp.text())


@pytest.mark.parametrize("model", ["up/☃\u0000", "up/a\r\nX-Evil: 1", "up/\x1b[31mred"])
async def test_a_model_id_with_control_characters_is_400_invalid_value(
    sparks_client: Any, upstream: Any, tmp_path: Path, model: str
) -> None:
    client = await start(sparks_client, upstream, tmp_path)
    resp = await post_chat(client, model)
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert (error["code"], error["param"]) == ("invalid_value", "model")
    (terminal,) = terminal_events(tmp_path)
    assert terminal["event"] == "request.rejected"


async def test_a_non_ascii_model_id_still_gets_an_answer_with_its_route_header(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await start(sparks_client, upstream, tmp_path)
    resp = await post_chat(client, "up/☃")
    assert resp.status == 404  # the fake upstream has no such model: passed back as it came
    assert resp.headers["X-Request-Id"]


async def test_an_upstream_html_error_page_is_summarised_not_pasted(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await start(sparks_client, upstream, tmp_path)
    resp = await post_chat(client, fake={"body": "html", "html_status": 502})
    assert resp.status == 502
    message = (await resp.json())["error"]["message"]
    assert "<" not in message and "html" not in message.replace("text/html", "")
    assert "text/html" in message and "Wi-Fi login" in message
    assert len(message) < 300


async def test_an_upstream_html_4xx_passes_back_summarised(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await start(sparks_client, upstream, tmp_path)
    resp = await post_chat(client, fake={"body": "html", "html_status": 403})
    assert resp.status == 403
    message = (await resp.json())["error"]["message"]
    assert "<title>" not in message and "Sign in Wi-Fi login" in message


async def test_a_usage_chunk_with_an_empty_delta_is_dropped_when_usage_was_not_asked(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    """LiteLLM sends usage with `choices: [{"index": 0, "delta": {}}]` after the finish chunk."""
    finish = {**GOOD_CHUNK, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    usage = {
        **GOOD_CHUNK,
        "choices": [{"index": 0, "delta": {}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    client = await start(sparks_client, upstream, tmp_path)
    resp = await post_chat(client, stream=True, fake={"raw_events": [GOOD_CHUNK, finish, usage]})
    data = sse_data(await resp.text())
    assert len(data) == 3 and data[-1] == "[DONE]"
    assert json.loads(data[1])["choices"][0]["finish_reason"] == "stop"
    (terminal,) = terminal_events(tmp_path)
    assert terminal["usage"]["total_tokens"] == 4


async def test_models_kind_ghost_lists_only_ghosts_and_aliases_show_their_configured_chain(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    aliases = {"inner": ["up/fake-model", "up/fake-small"], "outer": ["inner"]}
    client = await start(sparks_client, upstream, tmp_path, aliases=aliases)
    resp = await client.get("/v1/models?kind=ghost", headers=AUTH)
    ids = [e["id"] for e in (await resp.json())["data"]]
    assert ids == ["sparks/coder", "sparks/scout"]
    resp = await client.get("/v1/models/outer", headers=AUTH)
    assert (await resp.json())["sparks"]["chain"] == ["inner"]


async def test_providers_report_reachability_for_a_backend_with_a_static_model_list(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    from .conftest import free_port

    backends = {
        "up": {"base_url": upstream_url(upstream), "models": ["fake-model"]},
        "down": {"base_url": f"http://127.0.0.1:{free_port()}/v1", "models": ["m"]},
    }
    client = await sparks_client(_config_with(tmp_path, backends))
    resp = await client.get("/v1/providers", headers=AUTH)
    by_name = {p["name"]: p for p in (await resp.json())["data"]}
    assert by_name["up"]["reachable"] is True and by_name["up"]["last_error"] is None
    assert by_name["down"]["reachable"] is False
    assert "Connect" in by_name["down"]["last_error"] or "connect" in by_name["down"]["last_error"]


def _config_with(tmp_path: Path, backends: dict[str, Any]) -> Any:
    from sparks.config import parse_config

    return parse_config(
        {
            "observer": {"path": str(tmp_path / "events.jsonl"), "console": False},
            "backends": backends,
        },
        None,
    )


async def test_every_request_leaves_exactly_one_terminal_event_even_for_a_404_path(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await start(sparks_client, upstream, tmp_path)
    await client.get("/v1/nothing\x1b]0;TITLE\x07", headers=AUTH)
    await post_chat(client)
    async with aiohttp.ClientSession() as session:
        url = client.make_url("/v1/models")
        async with session.get(url) as resp:
            assert resp.status == 401
    statuses = sorted(e["status"] for e in terminal_events(tmp_path))
    assert statuses == [200, 401, 404]
