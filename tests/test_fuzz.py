"""Fuzz the HTTP surface of a real `sparks serve` (subprocess) with hypothesis: every response
is a status docs/openapi.yaml lists for that operation, every error is OpenAI-shaped, never a
500, and every request leaves exactly one terminal observer event. Bounded in examples."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import ROOT, free_port, read_events
from .test_serve_subprocess import KEY, child_env, read_line_with, stop

# CI runs a bounded fuzz; SPARKS_FUZZ_EXAMPLES=5000 (read at import) runs the long version.
FUZZ_EXAMPLES = int(os.environ.get("SPARKS_FUZZ_EXAMPLES", "250"))
SPEC = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
AUTH = {"Authorization": f"Bearer {KEY}"}
UNDOCUMENTED_PATH_STATUSES = {401, 403, 404, 405, 429}
MODELS = [
    "up/fake-model",
    "fake-small",
    "sparks",
    "sparks/scout",
    "sparks/nope",
    "up/fail-500",
    "up/fail-400",
    "fast",
    "up/fake-model:local",
    "nobody/x",
]


def documented(path: str, method: str) -> set[int]:
    operation = SPEC["paths"].get(path, {}).get(method.lower())
    if operation is None:
        return UNDOCUMENTED_PATH_STATUSES
    codes: set[int] = set()
    for code in operation["responses"]:
        if code.endswith("XX"):
            base = int(code[0]) * 100
            codes.update(range(base, base + 100))
        else:
            codes.add(int(code))
    return codes


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    workspace = tmp / "ws"
    workspace.mkdir()
    (workspace / "a.txt").write_text("hello\n")
    fake = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "fake_upstream.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(tmp),
    )
    upstream = read_line_with(fake, "listening on")[-1].rsplit(" ", 1)[-1].strip()
    port = free_port()
    config = tmp / "config.toml"
    config.write_text(
        f'[openai_api]\nbind = "127.0.0.1:{port}"\nrequests_per_minute = 0\n'
        f'[observer]\npath = "{tmp / "events.jsonl"}"\nconsole = false\n'
        f'[backends.up]\nbase_url = "{upstream}"\n'
        f'[aliases]\nfast = ["up/fail-500", "up/fake-model"]\n'
        f'[ghost_defaults]\nmodel = "up/fake-model"\nsandbox = "none"\n'
        f'[[ghosts]]\nname = "scout"\nread_only = true\nworkspace = "{workspace}"\n'
        f'tools = ["read_file"]\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "sparks", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(tmp, SPARKS_OPENAI_API_KEY=KEY),
    )
    try:
        read_line_with(proc, "events:")
        yield f"http://127.0.0.1:{port}", tmp / "events.jsonl"
    finally:
        assert stop(proc) == 0
        fake.terminate()
        fake.wait(10)
        assert fake.stdout is not None
        fake.stdout.close()


json_leaf = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
message = st.fixed_dictionaries(
    {},
    optional={
        "role": st.sampled_from(["user", "system", "assistant", "tool"]) | json_value,
        "content": st.text(max_size=40) | json_value,
    },
)
chat_body = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(MODELS) | json_value,
        "messages": st.lists(message, max_size=3) | json_value,
        "stream": st.booleans() | json_value,
        "stream_options": st.fixed_dictionaries({"include_usage": st.booleans() | json_value})
        | json_value,
        "reasoning_effort": st.sampled_from(["none", "low", "high", "max"]) | json_value,
        "enable_thinking": st.booleans() | json_value,
        "n": st.integers(-1, 3) | json_value,
        "tools": st.just([{"type": "function", "function": {"name": "f"}}]) | json_value,
        "input": st.text(max_size=10) | json_value,
        "prompt": st.text(max_size=10),
        "voice": st.just("alloy"),
    },
)
operations = st.sampled_from(
    [
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/completions"),
        ("POST", "/v1/embeddings"),
        ("POST", "/v1/images/generations"),
        ("POST", "/v1/audio/speech"),
        ("POST", "/v1/audio/transcriptions"),
        ("GET", "/v1/models"),
        ("GET", "/v1/aliases"),
        ("GET", "/v1/providers"),
        ("GET", "/health"),
        ("GET", "/v1/chat/completions"),
        ("DELETE", "/v1/models"),
        ("POST", "/v1/nothing/here"),
    ]
)
payloads = chat_body.map(lambda b: json.dumps(b).encode()) | st.binary(max_size=64)
headers = st.sampled_from(
    [
        AUTH,
        AUTH,
        AUTH,
        {},
        {"Authorization": "Bearer nope"},
        {**AUTH, "Host": "evil.example"},
        {**AUTH, "Origin": "https://evil.example"},
    ]
)


def multipart(fields: dict[str, str], payload: bytes) -> tuple[bytes, str]:
    boundary = "sparksfuzzboundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n".encode()
        + payload
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def check(status: int, headers: Any, body: bytes, method: str, path: str) -> None:
    assert status in documented(path, method), (method, path, status, body[:300])
    assert status != 500
    assert headers.get("x-request-id")
    if status >= 400:
        error = json.loads(body)["error"]
        assert set(error) >= {"message", "type", "param", "code"}, error


@pytest.mark.slow
def test_fuzzed_requests_get_documented_statuses_and_shaped_errors(
    daemon: tuple[str, Path],
) -> None:
    base, events_path = daemon
    seen: list[tuple[str, int]] = []
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:

        @settings(
            max_examples=FUZZ_EXAMPLES,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
            derandomize=True,
        )
        @given(
            operation=operations,
            payload=payloads,
            extra=headers,
            query=st.sampled_from(
                [
                    "",
                    "?include_route_trace=true",
                    "?kind=nope",
                    "?limit=x",
                    "?limit=1&offset=1&search=up",
                ]
            ),
        )
        def one(
            operation: tuple[str, str], payload: bytes, extra: dict[str, str], query: str
        ) -> None:
            method, path = operation
            send_headers = dict(extra)
            body: bytes | None = None
            if method == "POST" and path.endswith("transcriptions"):
                fields = {"model": "up/fake-model"} if payload[:1] != b"x" else {}
                body, send_headers["Content-Type"] = multipart(fields, payload)
            elif method == "POST":
                body = payload
                send_headers["Content-Type"] = "application/json"
            conn.request(method, path + query, body=body, headers=send_headers)
            resp = conn.getresponse()
            data = resp.read()
            check(resp.status, resp.headers, data, method, path)
            if path != "/health":
                seen.append((resp.headers["x-request-id"], resp.status))

        one()
    finally:
        conn.close()
    terminal = Counter(
        e.get("request_id")
        for e in read_events(events_path)
        if e["event"] in ("request.completed", "request.failed", "request.rejected")
    )
    # keyless refusals past the flood bound (SPEC §8) are counted in a summary line instead
    assert seen and all(terminal[rid] == 1 for rid, status in seen if status not in (401, 403))
    assert all(terminal[rid] <= 1 for rid, status in seen if status in (401, 403))
