"""Every row of the SPEC §7 error table in scope: status, `code`, and the OpenAI error shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import AUTH, free_port, make_config, post_chat, read_events, upstream_url

CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "hello"}]


async def start(sparks_client: Any, upstream: Any, tmp_path: Path, **sections: Any) -> Any:
    config = make_config(tmp_path, {"up": upstream_url(upstream)}, **sections)
    return await sparks_client(config)


async def expect_error(resp: Any, status: int, code: str, param: str | None = None) -> dict:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    error = body["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert error["code"] == code
    if param is not None:
        assert error["param"] == param
        assert param.split(".")[0].split("[")[0] in error["message"]
    return error


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        (b"{not json", 400, "invalid_json", None),
        (b"", 400, "invalid_json", None),
        (b"[1, 2]", 400, "invalid_value", None),
        (b'{"messages": [{"role": "user", "content": "x"}]}', 400, "missing_field", "model"),
        (b'{"model": "up/fake-model"}', 400, "missing_field", "messages"),
        (b'{"model": 42, "messages": []}', 400, "invalid_value", "model"),
        (b'{"model": "up/fake-model", "messages": "hi"}', 400, "invalid_value", "messages"),
        (b'{"model": "up/fake-model", "messages": [1]}', 400, "invalid_value", "messages[0]"),
        (
            b'{"model": "up/fake-model", "messages": [{"role": "user"}], "stream": "yes"}',
            400,
            "invalid_value",
            "stream",
        ),
        (
            b'{"model": "up/fake-model", "messages": [{"role": "user"}], '
            b'"reasoning_effort": "extreme"}',
            400,
            "invalid_value",
            "reasoning_effort",
        ),
    ],
)
async def test_bad_input_is_400_naming_the_field(
    sparks_client: Any,
    upstream: Any,
    tmp_path: Path,
    body: bytes,
    status: int,
    code: str,
    param: str | None,
) -> None:
    client = await start(sparks_client, upstream, tmp_path)
    resp = await client.post(CHAT, data=body, headers={**AUTH, "Content-Type": "application/json"})
    await expect_error(resp, status, code, param)


async def test_missing_or_wrong_key_is_401_with_www_authenticate(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await start(sparks_client, upstream, tmp_path)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
        resp = await client.get("/v1/models", headers=headers)
        await expect_error(resp, 401, "invalid_api_key")
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert "wrong" not in await resp.text()


async def test_x_api_key_header_and_client_principal_authenticate(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    config = make_config(tmp_path, {"up": upstream_url(upstream)})
    client = await sparks_client(config, extra_keys=[("sk-cursor-key-abcdef0123456789", "cursor")])
    resp = await client.get("/v1/models", headers={"x-api-key": "sk-cursor-key-abcdef0123456789"})
    assert resp.status == 200
    received = [
        e for e in read_events(tmp_path / "events.jsonl") if e["event"] == "request.received"
    ]
    assert received[-1]["principal"] == "cursor"


async def test_foreign_host_header_is_403_host_not_allowed(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await start(
        sparks_client, upstream, tmp_path, openai_api={"allowed_hosts": ["box.lan"]}
    )
    resp = await client.get("/v1/models", headers={**AUTH, "Host": "evil.example:8787"})
    await expect_error(resp, 403, "host_not_allowed")
    for host in ("localhost:8787", "app.localhost", "[::1]:8787", "127.0.0.2", "box.lan:9999"):
        ok = await client.get("/v1/models", headers={**AUTH, "Host": host})
        assert ok.status == 200, host


async def test_browser_origin_is_403_unless_allowed_and_cors_is_never_wildcard(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    allowed = "http://localhost:3000"
    client = await start(
        sparks_client, upstream, tmp_path, openai_api={"allowed_origins": [allowed]}
    )
    resp = await client.get("/v1/models", headers={**AUTH, "Origin": "https://evil.example"})
    await expect_error(resp, 403, "origin_not_allowed")
    ok = await client.get("/v1/models", headers={**AUTH, "Origin": allowed})
    assert ok.status == 200
    assert ok.headers["Access-Control-Allow-Origin"] == allowed
    assert "Access-Control-Allow-Private-Network" not in ok.headers
    preflight = await client.options(
        CHAT, headers={"Origin": allowed, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status == 204
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    plain = await client.get("/v1/models", headers=AUTH)
    assert "Access-Control-Allow-Origin" not in plain.headers


async def test_unknown_path_and_method_are_shaped_404_and_405(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await start(sparks_client, upstream, tmp_path)
    await expect_error(await client.get("/v1/nothing", headers=AUTH), 404, "not_found")
    await expect_error(await client.get(CHAT, headers=AUTH), 405, "method_not_allowed")


async def test_unknown_ghost_and_rejected_model_are_404_model_not_found(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await start(sparks_client, upstream, tmp_path, openai_api={"unknown_model": "reject"})
    for model in ("sparks/nope", "no-such-model", "nobackend/x"):
        resp = await client.post(CHAT, json={"model": model, "messages": HELLO}, headers=AUTH)
        await expect_error(resp, 404, "model_not_found", "model")
    await expect_error(await client.get("/v1/models/nope", headers=AUTH), 404, "model_not_found")


async def test_body_over_max_body_bytes_is_413(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await start(sparks_client, upstream, tmp_path, openai_api={"max_body_bytes": 1024})
    big = {"model": "up/fake-model", "messages": [{"role": "user", "content": "x" * 4096}]}
    await expect_error(await client.post(CHAT, json=big, headers=AUTH), 413, "request_too_large")

    async def chunked():  # no Content-Length: the limit still holds while reading
        yield b'{"model": "up/fake-model", "messages": [{"role": "user", "content": "'
        yield b"y" * 4096
        yield b'"}]}'

    resp = await client.post(CHAT, data=chunked(), headers=AUTH)
    await expect_error(resp, 413, "request_too_large")


async def test_over_the_limit_is_429_with_retry_after_and_ratelimit_headers(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await start(
        sparks_client, upstream, tmp_path, openai_api={"requests_per_minute": 6, "burst": 2}
    )
    first = await client.get("/v1/models", headers=AUTH)
    assert first.headers["x-ratelimit-limit-requests"] == "6"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert first.headers["x-ratelimit-reset-requests"]
    await client.get("/v1/models", headers=AUTH)
    third = await client.get("/v1/models", headers=AUTH)
    await expect_error(third, 429, "rate_limit_exceeded")
    assert int(third.headers["Retry-After"]) >= 1
    assert third.headers["x-ratelimit-remaining-requests"] == "0"
    # unauthenticated requests do not spend the bucket and get no limiter headers
    assert "x-ratelimit-limit-requests" not in (await client.get("/v1/models")).headers


async def test_upstream_500_is_502_upstream_error_quoting_status(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await start(sparks_client, upstream, tmp_path)
    resp = await client.post(CHAT, json={"model": "up/fail-500", "messages": HELLO}, headers=AUTH)
    error = await expect_error(resp, 502, "upstream_error")
    assert "500" in error["message"]
    assert "route_trace" not in error


async def test_unreachable_backend_is_503_upstream_unavailable(
    sparks_client: Any, tmp_path: Path
) -> None:
    config = make_config(tmp_path, {"dead": f"http://127.0.0.1:{free_port()}/v1"})
    client = await sparks_client(config)
    resp = await client.post(
        CHAT + "?include_route_trace=true",
        json={"model": "dead/m", "messages": HELLO},
        headers=AUTH,
    )
    error = await expect_error(resp, 503, "upstream_unavailable")
    assert error["route_trace"][0]["backend"] == "dead"


async def test_slow_backend_is_504_upstream_timeout(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    config = make_config(tmp_path, {"up": upstream_url(upstream)})
    data = {
        "backends": {"up": {"base_url": upstream_url(upstream), "timeout_s": 0.3}},
        "observer": {"path": str(tmp_path / "events.jsonl"), "console": False},
    }
    from sparks.config import parse_config

    config = parse_config(data, None)
    client = await sparks_client(config)
    resp = await client.post(CHAT, json={"model": "up/slow-3000", "messages": HELLO}, headers=AUTH)
    await expect_error(resp, 504, "upstream_timeout")


@pytest.mark.parametrize("kind", ["html", "truncated"])
async def test_upstream_garbage_body_is_502(
    sparks_client: Any, upstream: Any, tmp_path: Path, kind: str
) -> None:
    client = await start(sparks_client, upstream, tmp_path)
    resp = await client.post(
        CHAT,
        json={"model": "up/fake-model", "messages": HELLO, "fake": {"body": kind}},
        headers=AUTH,
    )
    await expect_error(resp, 502, "upstream_error")


async def test_upstream_4xx_goes_back_as_it_came(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await start(sparks_client, upstream, tmp_path)
    resp = await client.post(CHAT, json={"model": "up/fail-429", "messages": HELLO}, headers=AUTH)
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "7"
    resp = await client.post(
        CHAT,
        json={"model": "up/fake-model", "messages": HELLO, "fake": {"status": 400}},
        headers=AUTH,
    )
    assert resp.status == 400
    assert "error" in await resp.json()


async def test_mid_stream_failure_ends_with_error_event_then_done(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await start(sparks_client, upstream, tmp_path)
    resp = await post_chat(client, stream=True, fake={"chunks": 10, "fail_after_chunks": 3})
    assert resp.status == 200
    text = await resp.text()
    events = [line[6:] for line in text.split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert '"code":"upstream_error"' in events[-2]
    failed = [e for e in read_events(tmp_path / "events.jsonl") if e["event"] == "request.failed"]
    assert failed[-1]["code"] == "upstream_error"


async def test_garbage_sse_line_ends_stream_with_shaped_error(
    sparks_client: Any, upstream: Any, tmp_path: Path
) -> None:
    client = await start(sparks_client, upstream, tmp_path)
    resp = await post_chat(client, stream=True, fake={"body": "garbage_sse"})
    text = await resp.text()
    assert '"code":"upstream_error"' in text and text.endswith("data: [DONE]\n\n")


async def test_local_suffix_without_loopback_target_is_503_no_local_backend(
    sparks_client: Any, tmp_path: Path
) -> None:
    config = make_config(tmp_path, {"remote": "https://api.example.invalid/v1"})
    client = await sparks_client(config)
    resp = await client.post(
        CHAT, json={"model": "remote/big:local", "messages": HELLO}, headers=AUTH
    )
    await expect_error(resp, 503, "no_local_backend", "model")


async def test_ghost_without_any_backend_is_503_no_backend(
    sparks_client: Any, tmp_path: Path
) -> None:
    client = await sparks_client(make_config(tmp_path))  # no backends at all
    resp = await client.post(CHAT, json={"model": "sparks/scout", "messages": HELLO}, headers=AUTH)
    await expect_error(resp, 503, "no_backend")
