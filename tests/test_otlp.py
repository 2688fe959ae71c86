"""OTLP traces (SPEC §10.3): an OTLP/HTTP receiver in the test decodes what Sparks exports for
the same mix of requests as tests/test_metrics.py; a collector that is down or hangs never slows
or fails a request."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from sparks.config import parse_config

from .conftest import AUTH, ROOT, free_port, make_config, upstream_url
from .test_metrics import mix_config, run_mix

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")
trace_service = pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")

CHAT = "/v1/chat/completions"
SERVER, INTERNAL, CLIENT = 2, 1, 3  # opentelemetry.proto Span.SpanKind values
STATUS_ERROR = 2


@pytest.fixture(autouse=True)
def quick_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's own knob: export every 50 ms instead of every 5 s."""
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")


@dataclasses.dataclass
class Span:
    name: str
    kind: int
    span_id: bytes
    parent_id: bytes
    trace_id: bytes
    status: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: list[str]


def _value(any_value: Any) -> Any:
    field = any_value.WhichOneof("value")
    return getattr(any_value, field) if field else None


class Receiver:
    """An OTLP/HTTP collector: POST /v1/traces with an ExportTraceServiceRequest body."""

    def __init__(self, hang: bool = False) -> None:
        self.hang = hang
        self.spans: list[Span] = []
        self.resources: list[dict[str, Any]] = []
        self.content_types: set[str] = set()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/traces", self.traces)
        return app

    async def traces(self, request: web.Request) -> web.Response:
        if self.hang:
            await asyncio.sleep(3600)
        self.content_types.add(request.content_type)
        message = trace_service.ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in message.resource_spans:
            self.resources.append(
                {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            )
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    self.spans.append(
                        Span(
                            span.name,
                            span.kind,
                            span.span_id,
                            span.parent_span_id,
                            span.trace_id,
                            span.status.code,
                            span.start_time_unix_nano,
                            span.end_time_unix_nano,
                            {a.key: _value(a.value) for a in span.attributes},
                            [e.name for e in span.events],
                        )
                    )
        response = trace_service.ExportTraceServiceResponse()
        return web.Response(
            body=response.SerializeToString(), content_type="application/x-protobuf"
        )

    def root(self, request_id: str) -> Span | None:
        return next(
            (s for s in self.spans if s.attributes.get("sparks.request_id") == request_id), None
        )

    def children(self, root: Span) -> list[Span]:
        found = [s for s in self.spans if s.parent_id == root.span_id]
        return sorted(found, key=lambda s: s.start_ns)


async def wait_for_roots(receiver: Receiver, request_ids: list[str]) -> dict[str, Span]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        roots = {rid: receiver.root(rid) for rid in request_ids}
        if all(roots.values()):
            await asyncio.sleep(0.2)  # children share the batch, but let a straggler land
            return roots  # type: ignore[return-value]
        await asyncio.sleep(0.05)
    missing = [rid for rid in request_ids if receiver.root(rid) is None]
    raise AssertionError(f"no spans for {missing}; got {[s.name for s in receiver.spans]}")


def with_otlp(config: Any, endpoint: str, timeout_s: float = 2.0) -> Any:
    otlp = dataclasses.replace(config.observer.otlp, endpoint=endpoint, timeout_s=timeout_s)
    return dataclasses.replace(config, observer=dataclasses.replace(config.observer, otlp=otlp))


class RecordingIds:
    """Wraps the test client so every response's X-Request-Id is kept, in order."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.ids: list[tuple[str, str]] = []  # (method path model, request id)

    async def post(self, path: str, **kwargs: Any) -> Any:
        resp = await self.client.post(path, **kwargs)
        self.ids.append((kwargs.get("json", {}).get("model", ""), resp.headers["X-Request-Id"]))
        return resp

    async def get(self, path: str, **kwargs: Any) -> Any:
        return await self.client.get(path, **kwargs)


async def test_the_mix_becomes_traces_with_genai_attributes(
    sparks_client: Any, upstream: Any, fake: Any, tmp_path: Path, aiohttp_server: Any
) -> None:
    receiver = Receiver()
    collector = await aiohttp_server(receiver.app())
    second = await aiohttp_server(fake.create_app(["secondary"], name="up2"))
    config = with_otlp(mix_config(tmp_path, upstream, second), f"http://127.0.0.1:{collector.port}")
    client = RecordingIds(await sparks_client(config))
    await run_mix(client, upstream, fake)
    ids = dict(enumerate(rid for _, rid in client.ids))
    roots = await wait_for_roots(receiver, list(ids.values()))
    ok, bad, fallback, stream, ghost, unlisted, no_key = (roots[ids[i]] for i in range(7))

    assert receiver.content_types == {"application/x-protobuf"}
    assert receiver.resources[0]["service.name"] == "sparks"
    assert all(r.kind == SERVER and r.parent_id == b"" for r in roots.values())
    assert len({r.trace_id for r in roots.values()}) == 7  # one trace per request

    assert ok.name == "chat up/fake-model"
    assert (
        ok.attributes
        | {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "up/fake-model",
            "gen_ai.response.model": "up/fake-model",
            "sparks.route.kind": "backend",
            "http.response.status_code": 200,
            "sparks.principal": "self",
        }
        == ok.attributes
    )
    assert ok.attributes["gen_ai.usage.input_tokens"] > 0
    assert ok.attributes["gen_ai.usage.output_tokens"] > 0
    assert ok.attributes["sparks.cost"] > 0
    (attempt,) = receiver.children(ok)
    assert (attempt.name, attempt.kind, attempt.trace_id) == (
        "chat fake-model",
        CLIENT,
        ok.trace_id,
    )
    assert attempt.attributes["sparks.backend"] == "up"
    assert attempt.attributes["server.address"] == "127.0.0.1"
    assert attempt.attributes["server.port"] == upstream.port
    assert ok.start_ns <= attempt.start_ns <= attempt.end_ns <= ok.end_ns

    assert bad.attributes["http.response.status_code"] == 400
    assert bad.status != STATUS_ERROR  # a 4xx is the client's error, not the server span's
    assert "error.type" in bad.attributes
    assert receiver.children(bad)[0].attributes["error.type"] == "http_4xx"

    assert fallback.name == "chat smart"
    assert fallback.attributes["sparks.route.kind"] == "alias"
    assert fallback.attributes["sparks.fallback_from"] == "up/fail-500"
    assert fallback.attributes["gen_ai.response.model"] == "up2/secondary"
    first, served = receiver.children(fallback)
    assert (first.attributes["sparks.attempt"], served.attributes["sparks.attempt"]) == (1, 2)
    assert first.status == STATUS_ERROR and first.attributes["error.type"] == "http_5xx"
    assert first.attributes["http.response.status_code"] == 500
    assert served.attributes["sparks.backend"] == "up2" and served.status != STATUS_ERROR

    assert stream.attributes["sparks.stream"] is True
    assert stream.attributes["sparks.ttft_ms"] > 0

    assert ghost.name == "chat sparks/scout"
    assert ghost.attributes["gen_ai.agent.name"] == "scout"
    assert ghost.attributes["sparks.route.kind"] == "ghost"
    kids = receiver.children(ghost)
    assert [(k.kind, k.name) for k in kids] == [
        (CLIENT, "chat fake-model"),
        (INTERNAL, "execute_tool read_file"),
        (INTERNAL, "execute_tool read_file"),
        (CLIENT, "chat fake-model"),
    ]
    tools = [k for k in kids if k.kind == INTERNAL]
    assert [t.attributes["sparks.tool.ok"] for t in tools] == [True, False]
    assert [t.status == STATUS_ERROR for t in tools] == [False, True]
    assert tools[0].attributes["gen_ai.operation.name"] == "execute_tool"
    assert tools[0].attributes["gen_ai.tool.name"] == "read_file"
    assert tools[0].attributes["gen_ai.agent.name"] == "scout"
    assert "sparks.tool.args_summary" not in tools[0].attributes  # content: log_content only

    assert unlisted.attributes["gen_ai.response.model"] == "up/fake-small"  # traces keep ids
    assert no_key.name == "POST /v1/chat/completions"
    assert no_key.attributes["error.type"] == "invalid_api_key"
    assert "gen_ai.operation.name" not in no_key.attributes
    assert not [s for s in receiver.spans if "gen_ai.input.messages" in s.attributes]


async def test_content_is_exported_only_with_log_content(
    sparks_client: Any, upstream: Any, tmp_path: Path, aiohttp_server: Any
) -> None:
    receiver = Receiver()
    collector = await aiohttp_server(receiver.app())
    config = make_config(
        tmp_path,
        {"up": upstream_url(upstream)},
        observer={
            "log_content": True,
            "otlp": {"endpoint": f"http://127.0.0.1:{collector.port}/v1/traces"},
        },
    )
    client = await sparks_client(config)
    body = {"model": "up/fake-model", "messages": [{"role": "user", "content": "secret plan"}]}
    resp = await client.post(CHAT, json=body, headers=AUTH)
    assert resp.status == 200
    roots = await wait_for_roots(receiver, [resp.headers["X-Request-Id"]])
    (root,) = roots.values()
    assert "secret plan" in root.attributes["gen_ai.input.messages"]
    assert "echo: secret plan" in root.attributes["gen_ai.output.messages"]


@pytest.mark.parametrize("collector", ["down", "hanging"])
async def test_a_dead_or_hung_collector_never_slows_requests(
    collector: str, sparks_client: Any, upstream: Any, tmp_path: Path, aiohttp_server: Any
) -> None:
    if collector == "down":
        endpoint = f"http://127.0.0.1:{free_port()}"
    else:
        endpoint = f"http://127.0.0.1:{(await aiohttp_server(Receiver(hang=True).app())).port}"
    config = make_config(
        tmp_path,
        {"up": upstream_url(upstream)},
        observer={"otlp": {"endpoint": endpoint, "timeout_s": 1.0}},
        openai_api={"requests_per_minute": 0},
    )
    client = await sparks_client(config)
    body = {"model": "up/fake-model", "messages": [{"role": "user", "content": "hi"}]}
    slowest = 0.0
    started = time.perf_counter()
    for _ in range(40):  # enough to fill export batches while the collector fails
        one = time.perf_counter()
        resp = await client.post(CHAT, json=body, headers=AUTH)
        assert resp.status == 200
        await resp.read()
        slowest = max(slowest, time.perf_counter() - one)
    total = time.perf_counter() - started
    assert slowest < 0.5, f"a request took {slowest:.3f}s with the collector {collector}"
    assert total < 5.0
    closing = time.perf_counter()
    await client.close()  # shutdown waits for the exporter at most about timeout_s
    assert time.perf_counter() - closing < 4.0


def test_sparks_runs_without_the_otel_extra() -> None:
    """No endpoint: OpenTelemetry is never imported (the extra is optional)."""
    code = (
        "import sys\n"
        "from sparks.config import parse_config\n"
        "from sparks.auth import Credentials\n"
        "from sparks.server.app import create_app\n"
        "create_app(parse_config({}, None), Credentials([]), discover=False)\n"
        "loaded = [m for m in sys.modules if m.startswith('opentelemetry')]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


def test_an_endpoint_without_the_extra_is_a_startup_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sparks.auth import Credentials
    from sparks.errors import StartupError
    from sparks.server.app import create_app

    monkeypatch.setitem(sys.modules, "opentelemetry.sdk", None)
    config = parse_config({"observer": {"otlp": {"endpoint": "http://127.0.0.1:4318"}}}, None)
    with pytest.raises(StartupError, match=r"pip install 'sparks\[otel\]'") as failure:
        create_app(config, Credentials([]), discover=False)
    assert failure.value.exit_code == 2
