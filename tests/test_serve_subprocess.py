"""The real `sparks serve` as a subprocess: banner, SDK round trip, SIGTERM drain, kill -9.

The subprocess uses the `fail` keyring backend (PYTHON_KEYRING_BACKEND) so it never touches
the user's OS keyring; its key comes from the env var or the 0600 key file under tmp_path.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from .conftest import ROOT, free_port, read_events

KEY = "sk-subprocess-key-0123456789abcdef0123"


def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKS_")}
    env.update(
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def read_line_with(proc: subprocess.Popen[str], needle: str, timeout: float = 20.0) -> list[str]:
    """Read stdout lines until one contains `needle` (bounded in time)."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line)
        if needle in line:
            return lines
    raise AssertionError(f"{needle!r} not seen; got {lines!r}; rc={proc.poll()}")


@pytest.fixture
def fake_upstream_proc(tmp_path: Path) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "fake_upstream.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(tmp_path),
    )
    try:
        line = read_line_with(proc, "listening on")[-1]
        yield line.rsplit(" ", 1)[-1].strip()
    finally:
        proc.terminate()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()


def write_config(tmp_path: Path, upstream: str, port: int) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[openai_api]\nbind = "127.0.0.1:{port}"\n'
        f'[observer]\npath = "{tmp_path / "events.jsonl"}"\nconsole = false\n'
        f'[backends.up]\nbase_url = "{upstream}"\n'
    )
    return path


def start_serve(tmp_path: Path, config: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "sparks", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(tmp_path, **env),
    )


def stop(proc: subprocess.Popen[str]) -> int:
    """SIGTERM (once), wait, and close the pipes."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.mark.slow
def test_serve_banner_sdk_round_trip_and_sigterm_exit_zero(
    tmp_path: Path, fake_upstream_proc: str
) -> None:
    port = free_port()
    proc = start_serve(
        tmp_path, write_config(tmp_path, fake_upstream_proc, port), SPARKS_OPENAI_API_KEY=KEY
    )
    try:
        banner = "".join(read_line_with(proc, "events:"))
        assert f"http://127.0.0.1:{port}/v1" in banner
        assert "env SPARKS_OPENAI_API_KEY" in banner and KEY not in banner
        assert "up/fake-model" in banner
        oa = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0)
        answer = oa.chat.completions.create(
            model="up/fake-model", messages=[{"role": "user", "content": "from a subprocess"}]
        )
        assert answer.choices[0].message.content == "echo: from a subprocess"
        chunks = list(
            oa.chat.completions.create(
                model="up/fake-model",
                messages=[{"role": "user", "content": "stream me"}],
                stream=True,
            )
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
            "echo: stream me"
        )
        oa.close()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(15)
        assert KEY not in proc.stderr.read()
    finally:
        stop(proc)
    assert rc == 0
    events = read_events(tmp_path / "events.jsonl")
    assert events[0]["event"] == "server.started" and events[-1]["event"] == "server.stopped"
    assert KEY not in (tmp_path / "events.jsonl").read_text()


@pytest.mark.slow
def test_sigterm_drains_an_in_flight_stream(tmp_path: Path, fake_upstream_proc: str) -> None:
    port = free_port()
    proc = start_serve(
        tmp_path, write_config(tmp_path, fake_upstream_proc, port), SPARKS_OPENAI_API_KEY=KEY
    )
    try:
        read_line_with(proc, "events:")
        oa = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0)
        stream = oa.chat.completions.create(
            model="up/fake-model",
            messages=[{"role": "user", "content": "slow"}],
            stream=True,
            extra_body={"fake": {"chunks": 10, "chunk_delay_ms": 100}},
        )
        first = next(iter(stream))
        proc.send_signal(signal.SIGTERM)  # mid-stream: the rest must still arrive
        rest = list(stream)
        assert first is not None and rest[-1].choices[0].finish_reason == "stop"
        oa.close()
        rc = proc.wait(15)
    finally:
        stop(proc)
    assert rc == 0
    names = [e["event"] for e in read_events(tmp_path / "events.jsonl")]
    assert names.index("request.completed") < names.index("server.stopped")


@pytest.mark.slow
def test_kill_9_loses_no_finished_request(tmp_path: Path, fake_upstream_proc: str) -> None:
    port = free_port()
    proc = start_serve(
        tmp_path, write_config(tmp_path, fake_upstream_proc, port), SPARKS_OPENAI_API_KEY=KEY
    )
    ids = []
    try:
        read_line_with(proc, "events:")
        oa = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0)
        for index in range(20):
            raw = oa.chat.completions.with_raw_response.create(
                model="up/fake-model",
                messages=[{"role": "user", "content": f"n{index}"}],
                stream=index % 2 == 1,
            )
            if index % 2:
                list(raw.parse())
            ids.append(raw.headers["x-request-id"])
        proc.send_signal(signal.SIGKILL)  # immediately after the last response finished
        proc.wait(10)
        oa.close()
    finally:
        stop(proc)
    terminal = {
        e["request_id"]
        for e in read_events(tmp_path / "events.jsonl")
        if e["event"] == "request.completed"
    }
    assert set(ids) <= terminal


@pytest.mark.slow
def test_port_in_use_exits_1_and_nonlocal_bind_exits_2(
    tmp_path: Path, fake_upstream_proc: str
) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = start_serve(
            tmp_path, write_config(tmp_path, fake_upstream_proc, port), SPARKS_OPENAI_API_KEY=KEY
        )
        _, err = proc.communicate(timeout=20)
        stop(proc)
        assert proc.returncode == 1
        assert "already in use" in err and "Traceback" not in err
    config = write_config(tmp_path, fake_upstream_proc, free_port())
    proc = subprocess.run(
        [sys.executable, "-m", "sparks", "serve", "--config", str(config), "--bind", "0.0.0.0:0"],
        capture_output=True,
        text=True,
        env=child_env(tmp_path, SPARKS_OPENAI_API_KEY=KEY),
        timeout=20,
    )
    assert proc.returncode == 2 and "--allow-nonlocal" in proc.stderr


@pytest.mark.slow
def test_first_serve_without_key_generates_one_into_0600_key_file(
    tmp_path: Path, fake_upstream_proc: str
) -> None:
    port = free_port()
    proc = start_serve(tmp_path, write_config(tmp_path, fake_upstream_proc, port))
    try:
        banner = "".join(read_line_with(proc, "events:"))
        key_file = tmp_path / "config" / "sparks" / "api_key"
        assert f"key file {key_file}" in banner and "generated now" in banner
        assert key_file.stat().st_mode & 0o777 == 0o600
        key = key_file.read_text().strip()
        assert key not in banner and len(key) >= 43
        oa = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
        assert next(m.id for m in oa.models.list()) == "sparks"
        oa.close()
    finally:
        assert stop(proc) == 0


def test_invalid_config_exits_2_naming_key_and_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[openai_api]\nrequests_per_minut = 5\n")
    proc = subprocess.run(
        [sys.executable, "-m", "sparks", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        env=child_env(tmp_path),
        timeout=20,
    )
    assert proc.returncode == 2
    assert f"{path}: openai_api.requests_per_minut: unknown key" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_connections_that_never_finish_their_headers_are_closed(
    tmp_path: Path, fake_upstream_proc: str
) -> None:
    """Issue 10 row 19: 3,000 half-open header connections were all still held after 132 s."""
    import socket

    port = free_port()
    config = write_config(tmp_path, fake_upstream_proc, port)
    config.write_text(config.read_text().replace("[observer]", "header_timeout_s = 1\n[observer]"))
    proc = start_serve(tmp_path, config, SPARKS_OPENAI_API_KEY=KEY)
    sockets: list[socket.socket] = []
    try:
        read_line_with(proc, "events:")
        for _ in range(200):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            sockets.append(sock)
        time.sleep(2.5)
        closed = 0
        for sock in sockets:
            try:
                closed += sock.recv(1024) == b""
            except (ConnectionResetError, TimeoutError):
                closed += 1
        assert closed == len(sockets)
        oa = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0)
        assert [m.id for m in oa.models.list()]
        oa.close()
    finally:
        for sock in sockets:
            sock.close()
        stop(proc)
