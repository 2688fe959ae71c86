"""The dashboard's server side (SPEC §10.1): login codes, the cookie's scope, Origin checks, and
activity figures that equal `sparks activity --json` for the same log."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sparks.auth import Credentials
from sparks.cli.main import main as cli
from sparks.observe.activity import summarize
from sparks.observe.event_log import format_ts, iter_raw_lines, log_files
from sparks.server.app import create_app
from sparks.server.state import UI_DATA
from sparks.server.ui import figures
from sparks.server.ui.log_index import LogIndex
from sparks.server.ui.logins import CODE_TTL_S, LoginStore

from .conftest import API_KEY, AUTH, free_port, load_script, make_config, post_chat, upstream_url
from .test_activity import LOG

GROUPINGS = ("model", "ghost", "principal", "backend")


async def login(client: Any) -> str:
    """Mint a code with the main key and trade it; returns the code (now used up)."""
    minted = await client.post("/ui/login-code", headers=AUTH)
    assert minted.status == 200, await minted.text()
    body = await minted.json()
    assert body["path"] == f"/ui/#code={body['code']}"
    traded = await client.post("/ui/api/session", json={"code": body["code"]})
    assert traded.status == 200, await traded.text()
    return body["code"]


def cli_activity(log: Path, by: str, since: str, tmp_path: Path) -> dict[str, Any]:
    config = tmp_path / f"cli-{log.stem}.toml"
    config.write_text(f'[observer]\npath = "{log}"\n')
    result = CliRunner().invoke(
        cli, ["activity", "--config", str(config), "--since", since, "--by", by, "--json"]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def without_extras(data: dict[str, Any]) -> dict[str, Any]:
    """The dashboard's activity object minus what it adds to the CLI's."""
    strip = lambda row: {k: v for k, v in row.items() if k != "ttft_p95_ms"}  # noqa: E731
    return {
        "by": data["by"],
        "since": data["since"],
        "groups": [strip(row) for row in data["groups"]],
        "total": strip(data["total"]),
        "in_flight": data["in_flight"],
    }


# ---------------------------------------------------------------- login codes


async def test_login_code_works_once_and_a_second_use_is_refused(sparks_client: Any) -> None:
    client = await sparks_client()
    minted = await (await client.post("/ui/login-code", headers=AUTH)).json()
    first = await client.post("/ui/api/session", json={"code": minted["code"]})
    assert first.status == 200
    cookie = first.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui/" in cookie
    assert API_KEY not in cookie
    again = await client.post("/ui/api/session", json={"code": minted["code"]})
    assert again.status == 401
    assert (await again.json())["error"]["code"] == "invalid_login_code"
    wrong = await client.post("/ui/api/session", json={"code": "not-a-code"})
    assert wrong.status == 401


def test_a_code_expires_after_a_minute_and_sessions_are_bounded() -> None:
    now = [1000.0]
    store = LoginStore(clock=lambda: now[0])
    late = store.new_code()
    now[0] += CODE_TTL_S + 0.001
    assert store.redeem(late) is None
    fresh = store.new_code()
    now[0] += CODE_TTL_S - 1
    token = store.redeem(fresh)
    assert token and store.session_valid(token) and not store.session_valid(fresh)
    assert store.redeem(fresh) is None
    store.end_session(token)
    assert not store.session_valid(token) and not store.session_valid(None)


async def test_only_the_main_key_mints_codes(sparks_client: Any) -> None:
    client = await sparks_client(extra_keys=[("sk-cursor-key-0123456789abcdefghij", "cursor")])
    assert (await client.post("/ui/login-code")).status == 401
    as_client = {"Authorization": "Bearer sk-cursor-key-0123456789abcdefghij"}
    refused = await client.post("/ui/login-code", headers=as_client)
    assert refused.status == 403


# ---------------------------------------------------------------- the cookie's scope


async def test_the_cookie_authorises_dashboard_data_and_nothing_else(sparks_client: Any) -> None:
    client = await sparks_client()
    assert (await client.get("/ui/api/activity")).status == 401
    await login(client)
    assert (await client.get("/ui/api/activity")).status == 200
    assert (await client.get("/ui/api/routes")).status == 200
    for path in ("/v1/models", "/v1/providers", "/v1/observer/events"):
        refused = await client.get(path)
        assert refused.status == 401, path
        assert (await refused.json())["error"]["code"] == "invalid_api_key"
    assert (await client.post("/ui/login-code")).status == 401  # the key, not the cookie
    chat = await client.post("/v1/chat/completions", json={"model": "x", "messages": []})
    assert chat.status == 401
    assert (await client.post("/ui/api/logout")).status == 200
    assert (await client.get("/ui/api/activity")).status == 401


async def test_the_page_and_its_files_need_no_credential_and_hold_no_key(
    sparks_client: Any,
) -> None:
    client = await sparks_client()
    page = await client.get("/ui/")
    assert page.status == 200 and page.content_type == "text/html"
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"
    html = await page.text()
    version = html.split('src="static/', 1)[1].split("/", 1)[0]
    assert f"static/{version}/app.js" in html and API_KEY not in html
    script = await client.get(f"/ui/static/{version}/app.js")
    assert script.status == 200 and script.content_type == "text/javascript"
    assert "immutable" in script.headers["Cache-Control"]
    assert (await client.get("/ui/static/0123456789ab/app.js")).status == 404  # old version
    for name in ("nope.js", "..%2Fviews.py", "app.js%00.css", "index.html"):
        assert (await client.get(f"/ui/static/{version}/{name}")).status == 404, name
    redirect = await client.get("/ui", allow_redirects=False)
    assert redirect.status == 302 and redirect.headers["Location"] == "/ui/"


async def test_a_foreign_origin_is_refused_and_the_own_origin_only_on_ui(
    sparks_client: Any,
) -> None:
    client = await sparks_client()
    await login(client)
    own = f"http://127.0.0.1:{client.port}"
    for origin in ("http://evil.example", "null", f"http://localhost:{client.port}"):
        refused = await client.get("/ui/api/activity", headers={"Origin": origin})
        assert refused.status == 403, origin
        assert (await refused.json())["error"]["code"] == "origin_not_allowed"
    exchange = await client.post(
        "/ui/api/session", json={"code": "x"}, headers={"Origin": "http://evil.example"}
    )
    assert exchange.status == 403
    assert (await client.get("/ui/api/activity", headers={"Origin": own})).status == 200
    # same-site (another port of this host) gets the cookie from a browser, but no data
    same_site = {"Sec-Fetch-Site": "same-site"}
    assert (await client.get("/ui/api/activity", headers=same_site)).status == 403
    api = await client.get("/v1/models", headers={**AUTH, "Origin": own})
    assert api.status == 403  # the daemon's own origin is allowed on /ui only
    rebinding = await client.get("/ui/", headers={"Host": "evil.example"})
    assert rebinding.status == 403
    assert (await rebinding.json())["error"]["code"] == "host_not_allowed"


# ---------------------------------------------------------------- figures


def test_index_figures_equal_activity_on_a_generated_and_a_tricky_log(tmp_path: Path) -> None:
    make_event_log = load_script("make_event_log")
    end = datetime.now(UTC).replace(microsecond=0)
    path = tmp_path / "events.jsonl"
    generated = "".join(make_event_log.generate_lines(400_000, 3, 2.0, end))
    path.write_text(generated + "".join(LOG))
    index = LogIndex(path)
    index.refresh()
    lines = list(iter_raw_lines(log_files(path)))
    for since in (None, format_ts(end - timedelta(hours=1)), "2026-11-23T11:59:00.000Z"):
        for by in GROUPINGS:
            expected = summarize(lines, by, since).as_dict()
            assert without_extras(figures.activity(index.rows, by, since)) == expected, (by, since)
    since = format_ts(end - timedelta(minutes=30))
    assert without_extras(figures.activity(index.rows, "backend", since)) == cli_activity(
        path, "backend", since, tmp_path
    )


def test_the_index_follows_appends_rotation_and_truncation(tmp_path: Path) -> None:
    make_event_log = load_script("make_event_log")
    end = datetime.now(UTC).replace(microsecond=0)
    lines = list(make_event_log.generate_lines(120_000, 5, 1.0, end))
    third = len(lines) // 3
    path = tmp_path / "events.jsonl"
    index = LogIndex(path)
    cache = figures.WindowCache()

    def check() -> None:
        index.refresh()
        expected = summarize(iter_raw_lines(log_files(path)), "model", None).as_dict()
        assert without_extras(figures.activity(index.rows, "model", None)) == expected
        cached = cache.figures(index.rows, index.dropped, index.generation, "model", None)
        assert without_extras(cached) == expected

    path.write_text("".join(lines[:third]) + lines[third][:25])  # a half-written last line
    check()
    with path.open("a") as out:
        out.write(lines[third][25:] + "".join(lines[third + 1 : 2 * third]))
    check()
    os.replace(path, path.with_name("events.jsonl.1"))  # rotation
    path.write_text("".join(lines[2 * third :]))
    check()
    os.unlink(path.with_name("events.jsonl.1"))  # the oldest backup rotated out
    check()
    assert index.dropped > 0
    path.write_text("".join(LOG))  # truncated and rewritten
    check()


async def test_activity_endpoint_equals_the_cli_for_the_same_log(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    """The daemon appends its own events, so the CLI reads exactly the bytes the index had read
    when it answered."""
    make_event_log = load_script("make_event_log")
    log = tmp_path / "events.jsonl"
    end = datetime.now(UTC).replace(microsecond=0)
    log.write_text("".join(make_event_log.generate_lines(300_000, 9, 3.0, end)))
    client = await sparks_client(make_config(tmp_path, {"up": upstream_url(upstream)}))
    await login(client)
    for _ in range(3):
        assert (await post_chat(client)).status == 200
    assert (await post_chat(client, "up/fake-model", stream=True)).status == 200
    since = format_ts(end - timedelta(hours=2))
    for by in GROUPINGS:
        answer = await client.get("/ui/api/activity", params={"since": since, "by": by})
        assert answer.status == 200
        data = await answer.json()
        assert data["total"]["requests"] > 100
        assert sum(p["requests"] for p in data["series"]["points"]) == data["total"]["requests"]
        read = client.app[UI_DATA].index.tail[1]
        snapshot = tmp_path / f"snapshot-{by}.jsonl"
        snapshot.write_bytes(log.read_bytes()[:read])
        assert without_extras(data) == cli_activity(snapshot, by, since, tmp_path), by
    rows = {row["key"]: row for row in data["groups"]}
    assert "up" in rows


async def test_live_backlog_story_runs_and_routes(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    config = make_config(tmp_path, {"up": upstream_url(upstream)}, aliases={"fast": ["up/x"]})
    client = await sparks_client(config)
    await login(client)
    sent = await post_chat(client)
    rid = sent.headers["X-Request-Id"]
    listed = await (await client.get("/ui/api/requests")).json()
    newest = listed["data"][0]
    assert newest["request_id"] == rid and newest["status"] == 200
    assert newest["route"] == "backend:up/fake-model" and newest["tokens_in"] > 0
    assert all(not r["path"].startswith("/ui") for r in listed["data"])
    story = await (await client.get(f"/ui/api/requests/{rid}")).json()
    names = [e["event"] for e in story["events"]]
    assert names[0] == "request.received" and names[-1] == "request.completed"
    assert "upstream.attempt" in names
    assert (await client.get("/ui/api/requests/req_000000000000000000000000")).status == 404
    assert (await client.get("/ui/api/requests/a%22b")).status == 400
    routes = await (await client.get("/ui/api/routes")).json()
    assert routes["providers"][0]["name"] == "up"
    assert routes["aliases"][0]["chain"][0]["id"] == "up/x"
    assert any(m["id"] == "up/fake-model" for m in routes["models"])
    assert (await (await client.get("/ui/api/runs")).json())["data"] == []
    bad = await client.get("/ui/api/activity", params={"by": "colour"})
    assert bad.status == 400


async def test_sparks_ui_prints_a_working_one_time_url(
    aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    config_file = tmp_path / "config.toml"
    config_file.write_text(
        f'[openai_api]\nbind = "127.0.0.1:{port}"\n'
        f'[observer]\npath = "{tmp_path / "events.jsonl"}"\nconsole = false\n'
    )
    monkeypatch.setenv("SPARKS_OPENAI_API_KEY", API_KEY)
    from sparks.config import load_config

    config = load_config(str(config_file))
    app = create_app(config, Credentials([(API_KEY, "self")]), discover=False)
    client = await aiohttp_client(app, server_kwargs={"port": port})
    runner = CliRunner()
    result = await asyncio.to_thread(
        runner.invoke, cli, ["ui", "--config", str(config_file), "--no-open"]
    )
    assert result.exit_code == 0, result.output
    url = result.stdout.strip().splitlines()[0]
    assert url.startswith(f"http://127.0.0.1:{port}/ui/#code=")
    code = url.split("#code=", 1)[1]
    assert (await client.post("/ui/api/session", json={"code": code})).status == 200
    assert (await client.post("/ui/api/session", json={"code": code})).status == 401
    await client.close()
    down = await asyncio.to_thread(
        runner.invoke, cli, ["ui", "--config", str(config_file), "--no-open"]
    )
    assert down.exit_code == 1 and "sparks serve" in down.output
