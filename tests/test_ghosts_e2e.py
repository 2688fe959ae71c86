"""Ghosts through the real app against the fake upstream in scripted mode, over a temp workspace.

The fake upstream plays the ghost's model: each queued turn is one model answer (tool calls or
a final reply); `{last_tool_result}` in a reply is replaced by the last tool message it received,
so an answer can only carry file content if the tool really read it.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import openai
import pytest

from .conftest import API_KEY, AUTH, make_config, read_events, skip_or_fail, upstream_url

CHAT = "/v1/chat/completions"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "notes.txt").write_text("The rate limiter lives in sparks/limiter.py\n")
    (ws / "src" / "app.py").write_text("def greet():\n    return 'hello'\n")
    (ws / ".env").write_text("OPENAI_API_KEY=sk-live-do-not-leak\n")
    (tmp_path / "outside.txt").write_text("outside secret\n")
    (ws / "link_out").symlink_to(tmp_path / "outside.txt")
    return ws


def ghost_config(tmp_path: Path, upstream: Any, workspace: Path, **sections: Any) -> Any:
    ghosts = [
        {
            "name": "coder",
            "description": "Multi-file coding tasks: refactors, features, bug fixes.",
            "workspace": str(workspace),
        },
        {
            "name": "scout",
            "description": "Explores files and runs read-only commands; changes nothing.",
            "tools": ["read_file", "list_dir", "search", "shell"],
            "read_only": True,
            "workspace": str(workspace),
        },
    ]
    defaults = {"model": "up/fake-model", "sandbox": "none", **sections.pop("ghost_defaults", {})}
    return make_config(
        tmp_path,
        {"up": upstream_url(upstream)},
        ghosts=ghosts,
        ghost_defaults=defaults,
        **sections,
    )


def script(
    upstream: Any, fake: Any, turns: list[dict[str, Any]], model: str = "fake-model"
) -> None:
    fake.queue_script(upstream.app, model, turns)


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


async def ask(client: Any, model: str, text: str) -> Any:
    """One non-streaming chat request with a single user message."""
    return await client.post(
        CHAT, json={"model": model, "messages": [{"role": "user", "content": text}]}, headers=AUTH
    )


def sdk(client: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=API_KEY, max_retries=0)


def tool_messages(upstream: Any, fake: Any) -> list[str]:
    last = [r for r in upstream.app[fake.RECORDED] if r.path.endswith("/chat/completions")][-1]
    return [m["content"] for m in last.json["messages"] if m["role"] == "tool"]


async def test_scout_reads_a_real_file_and_answers_with_it(
    sparks_client: Any, upstream: Any, fake: Any, tmp_path: Path, workspace: Path
) -> None:
    client = await sparks_client(ghost_config(tmp_path, upstream, workspace))
    script(
        upstream,
        fake,
        [
            {"tool_calls": [call("read_file", path="notes.txt")]},
            {"reply": "Found it: {last_tool_result}"},
        ],
    )
    async with sdk(client) as oa:
        raw = await oa.chat.completions.with_raw_response.create(
            model="sparks/scout",
            messages=[{"role": "user", "content": "where is the rate limiter configured?"}],
        )
    answer = raw.parse()
    assert "sparks/limiter.py" in answer.choices[0].message.content
    assert answer.model == "sparks/scout"
    assert raw.headers["X-Sparks-Route"] == "ghost:scout"
    assert answer.usage.total_tokens > 0
    first = next(r for r in upstream.app[fake.RECORDED] if r.path.endswith("/chat/completions"))
    assert first.json["messages"][0]["role"] == "system"
    assert str(workspace) in first.json["messages"][0]["content"]
    names = [t["function"]["name"] for t in first.json["tools"]]
    assert "write_file" not in names and "edit_file" not in names and "read_file" in names
    steps = [e for e in read_events(tmp_path / "events.jsonl") if e["event"] == "ghost.step"]
    assert steps[0]["tool"] == "read_file" and steps[0]["ok"] is True
    assert steps[0]["args_summary"].startswith("notes.txt")
    assert "rate limiter lives" not in (tmp_path / "events.jsonl").read_text()


async def test_every_escape_attempt_is_refused_in_the_tool_result(
    sparks_client: Any, upstream: Any, fake: Any, tmp_path: Path, workspace: Path
) -> None:
    client = await sparks_client(ghost_config(tmp_path, upstream, workspace))
    attempts = ["../outside.txt", str(tmp_path / "outside.txt"), "link_out", ".env", "/etc/passwd"]
    script(
        upstream,
        fake,
        [
            {"tool_calls": [call("read_file", path=p) for p in attempts]},
            {"reply": "done"},
        ],
    )
    resp = await ask(client, "sparks/scout", "read all")
    assert resp.status == 200
    results = tool_messages(upstream, fake)
    assert len(results) == len(attempts)
    for attempt, result in zip(attempts, results, strict=True):
        assert "refused" in result.lower() or "outside" in result.lower(), (attempt, result)
        assert "outside secret" not in result and "sk-live-do-not-leak" not in result
        assert "root:" not in result


async def test_scout_cannot_write(
    sparks_client: Any, upstream: Any, fake: Any, tmp_path: Path, workspace: Path
) -> None:
    client = await sparks_client(ghost_config(tmp_path, upstream, workspace))
    script(
        upstream,
        fake,
        [
            {
                "tool_calls": [
                    call("write_file", path="new.txt", content="x"),
                    call("shell", command="touch made_by_shell"),
                    call("shell", command="ls > listing.txt"),
                ]
            },
            {"reply": "ok"},
        ],
    )
    await ask(client, "sparks/scout", "write")
    results = tool_messages(upstream, fake)
    assert all("refused" in r.lower() or "not" in r.lower() for r in results), results
    assert not (workspace / "new.txt").exists()
    assert not (workspace / "made_by_shell").exists()
    assert not (workspace / "listing.txt").exists()


async def test_coder_writes_and_edits_only_workspace_files(
    sparks_client: Any, upstream: Any, fake: Any, tmp_path: Path, workspace: Path
) -> None:
    client = await sparks_client(ghost_config(tmp_path, upstream, workspace))
    script(
        upstream,
        fake,
        [
            {
                "tool_calls": [
                    call("write_file", path="src/new.py", content="X = 1\n"),
                    call("edit_file", path="src/app.py", old="'hello'", new="'hi there'"),
                    call("write_file", path="../escaped.txt", content="nope"),
                ]
            },
            {"reply": "edited"},
        ],
    )
    resp = await ask(client, "sparks/coder", "edit")
    assert (await resp.json())["choices"][0]["message"]["content"] == "edited"
    assert (workspace / "src" / "new.py").read_text() == "X = 1\n"
    assert "'hi there'" in (workspace / "src" / "app.py").read_text()
    assert not (tmp_path / "escaped.txt").exists()
    assert "refused" in tool_messages(upstream, fake)[2].lower()


async def test_shell_environment_has_no_api_keys(
    sparks_client: Any,
    upstream: Any,
    fake: Any,
    tmp_path: Path,
    workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-should-vanish")
    monkeypatch.setenv("SPARKS_OPENAI_API_KEY", "sk-sparks-should-vanish")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-should-vanish")
    client = await sparks_client(ghost_config(tmp_path, upstream, workspace))
    script(upstream, fake, [{"tool_calls": [call("shell", command="env")]}, {"reply": "ok"}])
    await ask(client, "sparks/coder", "env")
    output = tool_messages(upstream, fake)[0]
    assert "PATH=" in output
    assert "should-vanish" not in output


async def test_max_steps_ends_the_loop_with_length(
    sparks_client: Any, upstream: Any, fake: Any, tmp_path: Path, workspace: Path
) -> None:
    config = ghost_config(tmp_path, upstream, workspace, ghost_defaults={"max_steps": 3})
    client = await sparks_client(config)
    script(
        upstream,
        fake,
        [{"tool_calls": [call("list_dir", path=".", depth=n)]} for n in (1, 2, 3, 4, 5)],
    )
    resp = await ask(client, "sparks/scout", "loop")
    body = await resp.json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert "max_steps" in body["choices"][0]["message"]["content"]
    chat_calls = [r for r in upstream.app[fake.RECORDED] if r.path.endswith("/chat/completions")]
    assert len(chat_calls) == 3


async def test_loop_guard_stops_a_repeated_call(
    sparks_client: Any, upstream: Any, fake: Any, tmp_path: Path, workspace: Path
) -> None:
    client = await sparks_client(ghost_config(tmp_path, upstream, workspace))
    script(upstream, fake, [{"tool_calls": [call("read_file", path="notes.txt")]}] * 6)
    resp = await ask(client, "sparks/scout", "again")
    body = await resp.json()
    assert "loop guard" in body["choices"][0]["message"]["content"]
    steps = [e for e in read_events(tmp_path / "events.jsonl") if e["event"] == "ghost.step"]
    assert len(steps) == 2  # the third identical call is not executed


async def test_streaming_shows_progress_then_content_then_usage(
    sparks_client: Any, upstream: Any, fake: Any, tmp_path: Path, workspace: Path
) -> None:
    client = await sparks_client(ghost_config(tmp_path, upstream, workspace))
    script(
        upstream,
        fake,
        [
            {"tool_calls": [call("read_file", path="src/app.py")]},
            {"reply": "greet() returns hello", "chunks": 3},
        ],
    )
    async with sdk(client) as oa:
        stream = await oa.chat.completions.create(
            model="sparks/scout",
            messages=[{"role": "user", "content": "what does greet return?"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in stream]
    order = []
    for chunk in chunks:
        if not chunk.choices:
            order.append("usage")
            continue
        delta = chunk.choices[0].delta
        extra = delta.model_extra or {}
        if extra.get("reasoning_content"):
            order.append("progress")
        if delta.content:
            order.append("content")
    assert order[0] == "progress" and order[-1] == "usage"
    assert order.index("content") > max(i for i, k in enumerate(order) if k == "progress")
    progress = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
        for c in chunks
        if c.choices
    )
    assert "read_file src/app.py" in progress
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == "greet() returns hello"
    assert chunks[-1].usage.total_tokens > 0


def _sleepers(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if marker.encode() in cmdline and b"pytest" not in cmdline:
                found.append(int(entry))
    return found


async def test_disconnect_kills_a_running_shell_within_a_second(
    sparks_client: Any, upstream: Any, fake: Any, tmp_path: Path, workspace: Path
) -> None:
    client = await sparks_client(ghost_config(tmp_path, upstream, workspace))
    marker = "sleep 30.123"
    script(upstream, fake, [{"tool_calls": [call("shell", command=marker)]}, {"reply": "slept"}])
    resp = await client.post(
        CHAT,
        json={
            "model": "sparks/coder",
            "messages": [{"role": "user", "content": "sleep"}],
            "stream": True,
        },
        headers=AUTH,
    )
    async with asyncio.timeout(10):
        async for line in resp.content:
            if b"shell" in line:
                break
    for _ in range(50):
        if _sleepers(marker):
            break
        await asyncio.sleep(0.05)
    assert _sleepers(marker), "the shell never started"
    resp.close()  # the client goes away mid-run
    loop = asyncio.get_running_loop()
    gone_at = None
    start = loop.time()
    while loop.time() - start < 3:
        if not _sleepers(marker):
            gone_at = loop.time() - start
            break
        await asyncio.sleep(0.02)
    assert gone_at is not None and gone_at < 1.0, gone_at
    await asyncio.sleep(0.1)
    events = read_events(tmp_path / "events.jsonl")
    assert any(e["event"] == "client.disconnected" for e in events)
    assert [e["status"] for e in events if e["event"] == "request.failed"] == [499]


async def test_client_tools_under_reject_and_n_above_one_are_400_unsupported_option(
    sparks_client: Any, upstream: Any, fake: Any, tmp_path: Path, workspace: Path
) -> None:
    """`client_tools = "reject"` refuses a request's tools; `merge` (the default) is in
    tests/test_ghost_client_tools.py."""
    config = ghost_config(tmp_path, upstream, workspace, ghost_defaults={"client_tools": "reject"})
    client = await sparks_client(config)
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    for extra, param in (({"tools": tools}, "tools"), ({"n": 2}, "n")):
        resp = await client.post(
            CHAT,
            json={"model": "sparks/coder", "messages": [{"role": "user", "content": "x"}], **extra},
            headers=AUTH,
        )
        assert resp.status == 400
        error = (await resp.json())["error"]
        assert error["code"] == "unsupported_option" and error["param"] == param
    assert not [r for r in upstream.app[fake.RECORDED] if r.path.endswith("/chat/completions")]


@pytest.mark.parametrize(
    ("question", "ghost"),
    [
        ("where is the config file read? explain", "scout"),
        ("fix the bug in the parser and add a feature", "coder"),
    ],
)
async def test_sparks_without_classifier_model_uses_keyword_heuristic(
    sparks_client: Any,
    upstream: Any,
    fake: Any,
    tmp_path: Path,
    workspace: Path,
    question: str,
    ghost: str,
) -> None:
    client = await sparks_client(ghost_config(tmp_path, upstream, workspace))
    script(upstream, fake, [{"reply": "answer"}])
    resp = await client.post(
        CHAT,
        json={"model": "sparks", "messages": [{"role": "user", "content": question}]},
        headers=AUTH,
    )
    assert resp.status == 200
    assert resp.headers["X-Sparks-Route"] == f"ghost:{ghost}; classifier=keyword"
    assert (await resp.json())["model"] == f"sparks/{ghost}"
    routed = [e for e in read_events(tmp_path / "events.jsonl") if e["event"] == "route.resolved"]
    assert routed[-1]["ghost"] == ghost and routed[-1]["classifier"]["method"] == "keyword"


async def test_classifier_llm_path_then_cache_then_fallback(
    sparks_client: Any, upstream: Any, fake: Any, tmp_path: Path, workspace: Path
) -> None:
    config = ghost_config(tmp_path, upstream, workspace, classifier={"model": "up/fake-small"})
    client = await sparks_client(config)
    script(upstream, fake, [{"reply": "sparks/scout"}], model="fake-small")
    script(upstream, fake, [{"reply": "one"}, {"reply": "two"}])
    question = {"role": "user", "content": "fix the parser please"}  # keyword would say coder
    first = await client.post(CHAT, json={"model": "sparks", "messages": [question]}, headers=AUTH)
    assert first.headers["X-Sparks-Route"] == "ghost:scout; classifier=llm"
    follow_up = [
        question,
        {"role": "assistant", "content": "one"},
        {"role": "user", "content": "?"},
    ]
    second = await client.post(CHAT, json={"model": "sparks", "messages": follow_up}, headers=AUTH)
    assert second.headers["X-Sparks-Route"] == "ghost:scout; classifier=cache"
    # a classifier model that fails falls back to the keyword heuristic
    config = ghost_config(tmp_path, upstream, workspace, classifier={"model": "up/fail-500"})
    client = await sparks_client(config)
    script(upstream, fake, [{"reply": "three"}])
    third = await ask(client, "sparks", "fix this bug")
    assert third.headers["X-Sparks-Route"] == "ghost:coder; classifier=keyword"
    routed = [e for e in read_events(tmp_path / "events.jsonl") if e["event"] == "route.resolved"]
    assert "llm failed" in routed[-1]["classifier"]["note"]
    assert json.dumps(routed[0]["classifier"]).count("latency_ms") == 1


async def test_ghost_local_suffix_refuses_a_remote_model(
    sparks_client: Any, upstream: Any, tmp_path: Path, workspace: Path
) -> None:
    config = make_config(
        tmp_path,
        {"remote": "https://api.example.invalid/v1"},
        ghost_defaults={"model": "remote/big"},
    )
    client = await sparks_client(config)
    resp = await ask(client, "sparks/scout:local", "x")
    assert resp.status == 503
    assert (await resp.json())["error"]["code"] == "no_local_backend"


async def test_ghost_usage_and_cost_are_summed_over_steps(
    sparks_client: Any, upstream: Any, fake: Any, tmp_path: Path, workspace: Path
) -> None:
    from sparks.config import parse_config

    data = {
        "observer": {"path": str(tmp_path / "events.jsonl"), "console": False},
        "backends": {
            "up": {
                "base_url": upstream_url(upstream),
                "model_info": {
                    "fake-model": {"price_in_per_mtok": 1000.0, "price_out_per_mtok": 2000.0}
                },
            }
        },
        "ghost_defaults": {"model": "up/fake-model", "sandbox": "none"},
        "ghosts": [
            {
                "name": "scout",
                "read_only": True,
                "workspace": str(workspace),
                "tools": ["read_file"],
            }
        ],
    }
    client = await sparks_client(parse_config(data, None))
    script(upstream, fake, [{"tool_calls": [call("read_file", path="notes.txt")]}, {"reply": "ok"}])
    resp = await ask(client, "sparks/scout", "read")
    usage = (await resp.json())["usage"]
    done = [e for e in read_events(tmp_path / "events.jsonl") if e["event"] == "request.completed"]
    expected = (usage["prompt_tokens"] * 1000 + usage["completion_tokens"] * 2000) / 1e6
    assert done[-1]["usage"] == usage
    assert done[-1]["cost"] == pytest.approx(expected)
    chat_calls = [r for r in upstream.app[fake.RECORDED] if r.path.endswith("/chat/completions")]
    assert len(chat_calls) == 2  # two model steps, one usage total
    # every model step is visible: an upstream.attempt each, counted on the terminal event
    attempts = [
        e for e in read_events(tmp_path / "events.jsonl") if e["event"] == "upstream.attempt"
    ]
    assert len(attempts) == 2 and done[-1]["upstream_calls"] == 2


async def test_shell_runs_inside_bwrap_when_available(
    sparks_client: Any, upstream: Any, fake: Any, tmp_path: Path, workspace: Path
) -> None:
    from sparks.ghosts.shell import SandboxUnavailable, sandbox_in_effect

    try:
        if sandbox_in_effect("auto") != "bwrap":
            skip_or_fail("bubblewrap is not installed or cannot create namespaces here")
    except SandboxUnavailable as exc:
        skip_or_fail(str(exc))
    config = ghost_config(tmp_path, upstream, workspace, ghost_defaults={"sandbox": "auto"})
    client = await sparks_client(config)
    outside = tmp_path / "outside-write.txt"
    script(
        upstream,
        fake,
        [
            {"tool_calls": [call("shell", command=f"echo hi > {outside}; echo ok > inside.txt")]},
            {"reply": "done"},
        ],
    )
    await ask(client, "sparks/coder", "write")
    assert not outside.exists()  # the jail's filesystem is read-only outside the workspace
    assert (workspace / "inside.txt").read_text() == "ok\n"


async def test_a_ghost_cannot_run_a_tool_it_was_not_given(
    sparks_client: Any, upstream: Any, fake: Any, tmp_path: Path, workspace: Path
) -> None:
    """`tools` is enforced when a call runs, not only in what the model is offered."""
    config = make_config(
        tmp_path,
        {"up": upstream_url(upstream)},
        ghost_defaults={"model": "up/fake-model", "sandbox": "none"},
        ghosts=[{"name": "reader", "tools": ["read_file"], "workspace": str(workspace)}],
    )
    client = await sparks_client(config)
    script(
        upstream,
        fake,
        [{"tool_calls": [call("shell", command="touch pwned")]}, {"reply": "{last_tool_result}"}],
    )
    resp = await ask(client, "sparks/reader", "x")
    body = await resp.json()
    assert "not one of this ghost's tools" in body["choices"][0]["message"]["content"]
    assert not (workspace / "pwned").exists()
    timing = resp.headers["Server-Timing"]
    assert timing.startswith("sparks;dur=") and "upstream;dur=" in timing and "tools;dur=" in timing


async def test_coder_edits_a_file_through_the_openai_sdk_streaming_and_not(
    sparks_client: Any, upstream: Any, fake: Any, tmp_path: Path, workspace: Path
) -> None:
    client = await sparks_client(ghost_config(tmp_path, upstream, workspace))
    script(
        upstream,
        fake,
        [
            {"tool_calls": [call("edit_file", path="src/app.py", old="'hello'", new="'hey'")]},
            {"reply": "Edited: {last_tool_result}"},
            {"tool_calls": [call("write_file", path="NOTES.md", content="# notes\n")]},
            {"reply": "Wrote NOTES.md", "chunks": 2},
        ],
    )
    async with sdk(client) as oa:
        answer = await oa.chat.completions.create(
            model="sparks/coder", messages=[{"role": "user", "content": "say hey, not hello"}]
        )
        stream = await oa.chat.completions.create(
            model="sparks/coder",
            messages=[{"role": "user", "content": "start a NOTES.md"}],
            stream=True,
        )
        chunks = [c async for c in stream]
    assert answer.model == "sparks/coder" and answer.choices[0].message.content.startswith("Edited")
    assert "'hey'" in (workspace / "src" / "app.py").read_text()
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == "Wrote NOTES.md"
    assert (workspace / "NOTES.md").read_text() == "# notes\n"
