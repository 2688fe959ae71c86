"""Client tools on a ghost (SPEC §5.1): merge, ignore and reject; the continuity cache; text of
turns that called tools; `default_ghost`. Through the real app, the openai SDK and the fake
upstream in scripted mode (each queued turn is one answer of the ghost's model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest

from sparks.config import parse_config
from sparks.errors import ConfigError
from sparks.pipeline.ghost_memory import GhostMemory

from .conftest import API_KEY, AUTH, read_events
from .test_ghosts_e2e import call, ghost_config, script

CHAT = "/v1/chat/completions"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CLASH = {"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}
QUESTION = [{"role": "user", "content": "Read notes.txt, then check the weather in Oslo."}]
ROUND_TRIP = [
    {"reply": "Reading the notes.", "tool_calls": [call("read_file", path="notes.txt")]},
    {"reply": "Now the weather.", "tool_calls": [call("get_weather", city="Oslo")]},
    {"reply": "Done: {last_tool_result}"},
]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "notes.txt").write_text("The rate limiter lives in sparks/limiter.py\n")
    return ws


def sdk(client: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=API_KEY, max_retries=0)


def model_requests(upstream: Any, fake: Any) -> list[dict[str, Any]]:
    return [r.json for r in upstream.app[fake.RECORDED] if r.path.endswith("/chat/completions")]


def steps(tmp_path: Path) -> list[dict[str, Any]]:
    return [e for e in read_events(tmp_path / "events.jsonl") if e["event"] == "ghost.step"]


async def first_turn(oa: openai.AsyncOpenAI, stream: bool) -> tuple[str, list[dict], str]:
    """The first request of a round trip: (text, tool calls as dicts, finish_reason)."""
    if not stream:
        answer = await oa.chat.completions.create(
            model="sparks/scout", messages=QUESTION, tools=[WEATHER]
        )
        message = answer.choices[0].message
        calls = [c.model_dump(exclude_none=True) for c in message.tool_calls or []]
        return message.content or "", calls, answer.choices[0].finish_reason
    text, finish, parts = "", "", {}
    async with await oa.chat.completions.create(
        model="sparks/scout", messages=QUESTION, tools=[WEATHER], stream=True
    ) as chunks:
        async for chunk in chunks:
            choice = chunk.choices[0]
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for part in choice.delta.tool_calls or []:
                entry = parts.setdefault(part.index, {"type": "function", "arguments": ""})
                entry["id"] = part.id or entry.get("id")
                entry["name"] = part.function.name or entry.get("name")
                entry["arguments"] += part.function.arguments or ""
    calls = [
        {
            "id": p["id"],
            "type": "function",
            "function": {"name": p["name"], "arguments": p["arguments"]},
        }
        for _, p in sorted(parts.items())
    ]
    return text, calls, finish


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_merged_round_trip_ghost_tool_then_client_tool_then_answer(
    sparks_client: Any, upstream: Any, fake: Any, tmp_path: Path, workspace: Path, stream: bool
) -> None:
    """The ghost reads a file itself, hands `get_weather` to the client, and answers with the
    client's result; the second turn's model request carries the first turn's internal steps."""
    client = await sparks_client(ghost_config(tmp_path, upstream, workspace))
    script(upstream, fake, ROUND_TRIP)
    async with sdk(client) as oa:
        text, calls, finish = await first_turn(oa, stream)
        assert finish == "tool_calls"
        assert text == "Reading the notes.\n\nNow the weather."  # separated, same both ways
        assert [c["function"]["name"] for c in calls] == ["get_weather"]
        assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Oslo"}
        call_id = calls[0]["id"]
        assert call_id.startswith("call_") and len(call_id) == 29

        offered = [t["function"]["name"] for t in model_requests(upstream, fake)[0]["tools"]]
        assert offered == ["read_file", "list_dir", "search", "get_weather"]  # no jail: no shell

        history = [
            *QUESTION,
            {"role": "assistant", "content": text, "tool_calls": calls},
            {"role": "tool", "tool_call_id": call_id, "content": "Oslo: 12°C, light rain"},
        ]
        final = await oa.chat.completions.create(
            model="sparks/scout", messages=history, tools=[WEATHER]
        )
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == "Done: Oslo: 12°C, light rain"

    second = model_requests(upstream, fake)[-1]["messages"]
    roles = [m["role"] for m in second]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "tool"]
    internal_call, internal_result = second[2], second[3]
    assert internal_call["tool_calls"][0]["function"]["name"] == "read_file"
    assert internal_call["content"] == "Reading the notes."
    assert "sparks/limiter.py" in internal_result["content"]
    assert internal_result["tool_call_id"] == internal_call["tool_calls"][0]["id"]
    assert second[4]["content"] == "Now the weather."  # the model's own text of that turn
    assert second[4]["tool_calls"][0]["id"] == call_id == second[5]["tool_call_id"]

    handed = [s for s in steps(tmp_path) if s.get("note", "").startswith("client tool: handed")]
    assert [(s["tool"], s["step"], s["ok"]) for s in handed] == [("get_weather", 2, True)]


async def test_cache_miss_still_continues_with_the_client_history(
    sparks_client: Any, upstream: Any, fake: Any, tmp_path: Path, workspace: Path
) -> None:
    """Tool-call ids Sparks never handed out (a restart, an eviction): the history goes as sent."""
    client = await sparks_client(ghost_config(tmp_path, upstream, workspace))
    script(upstream, fake, [{"reply": "Done: {last_tool_result}"}])
    history = [
        *QUESTION,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_unknown",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_unknown", "content": "sunny"},
    ]
    async with sdk(client) as oa:
        final = await oa.chat.completions.create(
            model="sparks/scout", messages=history, tools=[WEATHER]
        )
    assert final.choices[0].message.content == "Done: sunny"
    sent = model_requests(upstream, fake)[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool"]


async def test_ghost_tool_names_are_reserved_and_the_step_event_says_so(
    sparks_client: Any, upstream: Any, fake: Any, tmp_path: Path, workspace: Path
) -> None:
    client = await sparks_client(ghost_config(tmp_path, upstream, workspace))
    script(upstream, fake, [{"reply": "ok"}])
    body = {"model": "sparks/scout", "messages": QUESTION, "tools": [CLASH, WEATHER]}
    resp = await client.post(CHAT, json=body, headers=AUTH)
    assert resp.status == 200, await resp.text()
    tools = model_requests(upstream, fake)[0]["tools"]
    names = [t["function"]["name"] for t in tools]
    assert names.count("read_file") == 1 and names[-1] == "get_weather"
    assert tools[0]["function"]["parameters"]["required"] == ["path"]  # the ghost's schema
    [refused] = steps(tmp_path)
    assert refused["tool"] == "read_file" and refused["ok"] is False
    assert "not offered" in refused["note"] and "ghost's own tool" in refused["note"]


async def test_ignore_drops_client_tools_and_reject_refuses_them(
    sparks_client: Any, upstream: Any, fake: Any, tmp_path: Path, workspace: Path
) -> None:
    ghosts_ignore = {"client_tools": "ignore"}
    config = ghost_config(tmp_path, upstream, workspace, ghost_defaults=ghosts_ignore)
    client = await sparks_client(config)
    script(upstream, fake, [{"reply": "ok"}])
    body = {
        "model": "sparks/scout",
        "messages": QUESTION,
        "tools": [WEATHER],
        "tool_choice": "required",
        "parallel_tool_calls": False,
    }
    resp = await client.post(CHAT, json=body, headers=AUTH)
    assert resp.status == 200
    sent = model_requests(upstream, fake)[0]
    assert "get_weather" not in [t["function"]["name"] for t in sent["tools"]]
    assert sent["tool_choice"] == "auto" and "parallel_tool_calls" not in sent

    rejecting = parse_config(
        {"ghosts": [{"name": "strict", "client_tools": "reject", "workspace": str(workspace)}]},
        None,
    )
    assert next(g for g in rejecting.ghosts if g.name == "strict").client_tools == "reject"


async def test_tool_choice_and_parallel_tool_calls_apply_to_the_merged_set(
    sparks_client: Any, upstream: Any, fake: Any, tmp_path: Path, workspace: Path
) -> None:
    """A forcing tool_choice holds for the first model call only (so the loop can end)."""
    client = await sparks_client(ghost_config(tmp_path, upstream, workspace))
    script(upstream, fake, [{"tool_calls": [call("list_dir")]}, {"reply": "ok"}])
    forced = {"type": "function", "function": {"name": "list_dir"}}
    body = {
        "model": "sparks/scout",
        "messages": QUESTION,
        "tools": [WEATHER],
        "tool_choice": forced,
        "parallel_tool_calls": False,
    }
    resp = await client.post(CHAT, json=body, headers=AUTH)
    assert resp.status == 200, await resp.text()
    first, second = model_requests(upstream, fake)
    assert first["tool_choice"] == forced and second["tool_choice"] == "auto"
    assert first["parallel_tool_calls"] is False and second["parallel_tool_calls"] is False

    for choice, param in (
        ({"type": "function", "function": {"name": "nope"}}, "tool_choice"),
        ("sometimes", "tool_choice"),
    ):
        bad = await client.post(CHAT, json={**body, "tool_choice": choice}, headers=AUTH)
        assert bad.status == 400
        assert (await bad.json())["error"]["param"] == param
    assert len(model_requests(upstream, fake)) == 2  # refused before any model call


async def test_streamed_and_plain_answers_carry_the_same_separated_text(
    sparks_client: Any, upstream: Any, fake: Any, tmp_path: Path, workspace: Path
) -> None:
    client = await sparks_client(ghost_config(tmp_path, upstream, workspace))
    turns = [
        {"reply": "Let me look.", "tool_calls": [call("read_file", path="notes.txt")]},
        {"reply": "It is in sparks/limiter.py.", "chunks": 4},
    ]
    script(upstream, fake, turns + turns)
    async with sdk(client) as oa:
        plain = await oa.chat.completions.create(model="sparks/scout", messages=QUESTION)
        stream = await oa.chat.completions.create(
            model="sparks/scout", messages=QUESTION, stream=True
        )
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    expected = "Let me look.\n\nIt is in sparks/limiter.py."
    assert plain.choices[0].message.content == expected
    assert streamed == expected


async def test_default_ghost_is_the_classifiers_last_resort(
    sparks_client: Any, upstream: Any, fake: Any, tmp_path: Path, workspace: Path
) -> None:
    config = ghost_config(tmp_path, upstream, workspace, ghost_defaults={"default_ghost": "scout"})
    client = await sparks_client(config)
    script(upstream, fake, [{"reply": "hi"}])
    resp = await client.post(
        CHAT,
        json={"model": "sparks", "messages": [{"role": "user", "content": "hello"}]},
        headers=AUTH,
    )
    assert resp.status == 200
    assert resp.headers["X-Sparks-Route"] == "ghost:scout; classifier=default"


def test_config_validation_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"ghost_defaults\.client_tools: must be one of merge"):
        parse_config({"ghost_defaults": {"client_tools": "maybe"}}, None)
    with pytest.raises(ConfigError, match=r"ghosts\[0\]\.client_tools: must be one of"):
        parse_config({"ghosts": [{"name": "x", "client_tools": "all"}]}, None)
    with pytest.raises(ConfigError, match=r"ghost_defaults\.default_ghost: no ghost named 'x'"):
        parse_config({"ghost_defaults": {"default_ghost": "x"}}, None)
    assert parse_config({}, None).ghost_defaults.client_tools == "merge"


# --- the continuity cache, without a server ------------------------------------------------

OWNER = ("self", "scout")


def handoff(call_id: str, size: int = 10) -> tuple[list[dict], dict, list[dict]]:
    steps = [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "g1", "type": "function"}]},
        {"role": "tool", "tool_call_id": "g1", "content": "x" * size},
    ]
    message = {"role": "assistant", "content": "t", "tool_calls": [{"id": call_id}]}
    return steps, message, []


def client_history(call_id: str) -> list[dict]:
    return [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "t", "tool_calls": [{"id": call_id}]},
        {"role": "tool", "tool_call_id": call_id, "content": "r"},
    ]


def test_memory_splices_only_for_the_same_principal_and_ghost() -> None:
    memory = GhostMemory()
    assert memory.remember(OWNER, ["call_a"], *handoff("call_a"))
    spliced, hits = memory.splice(OWNER, client_history("call_a"))
    assert hits == 1 and [m["role"] for m in spliced] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
    ]
    assert memory.splice(("other", "scout"), client_history("call_a"))[1] == 0
    assert memory.splice(("self", "coder"), client_history("call_a"))[1] == 0


def test_memory_bounds_entries_bytes_and_age() -> None:
    now = [0.0]
    memory = GhostMemory(
        max_entries=2, max_entry_bytes=400, max_total_bytes=10_000, ttl_s=60, clock=lambda: now[0]
    )
    for name in ("call_1", "call_2", "call_3"):
        memory.remember(OWNER, [name], *handoff(name))
    assert len(memory) == 2 and memory.splice(OWNER, client_history("call_1"))[1] == 0
    # too big with its steps: the steps go, the handoff itself is kept
    assert memory.remember(OWNER, ["call_big"], *handoff("call_big", size=1000))
    spliced, hits = memory.splice(OWNER, client_history("call_big"))
    assert hits == 1 and [m["role"] for m in spliced] == ["user", "assistant", "tool"]
    now[0] = 61.0
    assert memory.splice(OWNER, client_history("call_big"))[1] == 0
    assert len(memory) == 0 and memory.total_bytes == 0
