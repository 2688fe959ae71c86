"""What a chain that found no answer tells the client (SPEC §4.2), pure: attempts in, error out."""

from __future__ import annotations

import json

from sparks.backends.upstream import Attempt, exhausted_error, passthrough_error
from sparks.routing import Target

A = Target("a/m", backend="a", upstream_model="m")
B = Target("b/m", backend="b", upstream_model="m")
HTML = b"<html><head><title>Sign in</title><style>p {}</style></head><body><h1>Wi-Fi login</h1>"


def answered(
    target: Target,
    status: int,
    body: bytes = b"",
    content_type: str = "application/json",
    retry_after: str | None = None,
) -> Attempt:
    """An attempt that got an HTTP error status, filled in the way `Upstreams` fills it."""
    attempt = Attempt(
        target,
        status=status,
        kind="status",
        body=body,
        content_type=content_type,
        retry_after=retry_after,
        latency_ms=1.5,
    )
    attempt.error = f"HTTP {status}: {attempt.error_text()}"
    return attempt


def unreachable(target: Target) -> Attempt:
    return Attempt(target, kind="connect", error=f"cannot connect to {target.backend}")


def timed_out(target: Target) -> Attempt:
    return Attempt(target, kind="timeout", error=f"no answer from {target.backend} within 5s")


def skipped(target: Target) -> Attempt:
    return Attempt(target, kind="skipped", error="skipped: cooling down (3.0s left)")


def openai_error(message: str, code: str | None = None, param: str | None = None) -> bytes:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    return json.dumps({"error": error}).encode()


def test_last_429_goes_back_with_its_retry_after() -> None:
    attempts = [answered(A, 503), answered(B, 429, openai_error("slow down"), retry_after="7")]
    error = exhausted_error(attempts)
    assert error.status == 429
    assert error.headers == {"Retry-After": "7"}
    assert error.message == "b/m: slow down"


def test_last_408_goes_back_as_it_came() -> None:
    error = exhausted_error([unreachable(A), answered(B, 408, openai_error("too slow"))])
    assert (error.status, error.code) == (408, "upstream_408")


def test_passthrough_keeps_the_upstreams_code_and_param() -> None:
    body = openai_error("context too long", code="context_length_exceeded", param="messages")
    error = passthrough_error(answered(A, 400, body), [answered(A, 400, body)])
    assert (error.status, error.code, error.param) == (400, "context_length_exceeded", "messages")
    assert error.message == "a/m: context too long"
    assert error.headers == {}


def test_passthrough_without_an_error_object_gets_an_upstream_status_code() -> None:
    error = passthrough_error(answered(A, 403, b"nope", "text/plain"), [])
    assert (error.status, error.code, error.param) == (403, "upstream_403", None)
    assert "nope" in error.message


def test_passthrough_drops_an_upstream_code_that_could_not_be_a_code() -> None:
    body = openai_error("bad", code="x\r\nSet-Cookie: a=b")
    assert passthrough_error(answered(A, 400, body), []).code == "upstream_400"


def test_passthrough_ignores_a_param_that_is_not_a_string() -> None:
    body = json.dumps({"error": {"message": "bad", "param": {"deep": [1]}}}).encode()
    assert passthrough_error(answered(A, 400, body), []).param is None


def test_html_error_page_is_summarised_never_pasted() -> None:
    error = passthrough_error(answered(A, 403, HTML, "text/html; charset=utf-8"), [])
    assert "<" not in error.message and "{}" not in error.message
    assert "text/html" in error.message and "Wi-Fi login" in error.message


def test_huge_upstream_error_message_is_cut_short() -> None:
    body = openai_error("x" * 60_000)
    error = passthrough_error(answered(A, 400, body), [])
    assert len(error.message) < 1000


def test_control_characters_in_an_upstream_message_do_not_reach_the_client() -> None:
    error = passthrough_error(answered(A, 400, openai_error("line\r\none\x00\x1b[31m")), [])
    assert error.message.isprintable()


def test_last_5xx_is_502_quoting_its_status() -> None:
    error = exhausted_error([unreachable(A), answered(B, 500, openai_error("boom"))])
    assert (error.status, error.code) == (502, "upstream_error")
    assert "b/m" in error.message and "500" in error.message and "boom" in error.message


def test_garbage_answer_is_502_naming_the_target() -> None:
    garbage = Attempt(B, status=200, kind="invalid", error="expected JSON, got text/html")
    error = exhausted_error([answered(A, 503), garbage])
    assert (error.status, error.code) == (502, "upstream_error")
    assert error.message == "b/m: expected JSON, got text/html"


def test_nothing_reachable_is_503_upstream_unavailable() -> None:
    error = exhausted_error([unreachable(A), unreachable(B)])
    assert (error.status, error.code) == (503, "upstream_unavailable")
    assert error.message == "cannot connect to b"


def test_last_reached_entry_timing_out_is_504() -> None:
    error = exhausted_error([timed_out(A), unreachable(B)])
    assert (error.status, error.code) == (504, "upstream_timeout")
    assert "within 5s" in error.message


def test_a_4xx_before_an_unreachable_last_entry_still_goes_back() -> None:
    """The last entry that answered decides; an unreachable tail does not hide its 429."""
    error = exhausted_error([answered(A, 429, retry_after="2"), unreachable(B)])
    assert (error.status, error.headers) == (429, {"Retry-After": "2"})


def test_a_5xx_before_an_unreachable_last_entry_is_502() -> None:
    error = exhausted_error([answered(A, 502), unreachable(B)])
    assert (error.status, error.code) == (502, "upstream_error")
    assert "a/m" in error.message and "502" in error.message


def test_skipped_entries_do_not_decide_the_outcome() -> None:
    error = exhausted_error([unreachable(A), skipped(B)])
    assert (error.status, error.code) == (503, "upstream_unavailable")


def test_all_entries_skipped_is_503_no_backend() -> None:
    error = exhausted_error([skipped(A), skipped(B)])
    assert (error.status, error.code) == (503, "no_backend")


def test_every_outcome_carries_one_trace_entry_per_attempt() -> None:
    chains = [
        [answered(A, 503), answered(B, 429)],
        [unreachable(A), answered(B, 500)],
        [unreachable(A), unreachable(B)],
        [skipped(A), timed_out(B)],
    ]
    for attempts in chains:
        trace = exhausted_error(attempts).route_trace
        assert trace is not None
        assert [t["target"] for t in trace] == [a.target.sparks_id for a in attempts]
        assert set(trace[0]) == {"target", "backend", "upstream_model", "status", "error"} | {
            "latency_ms"
        }


def test_all_skipped_no_backend_also_carries_the_trace() -> None:
    """SPEC §4.2: with include_route_trace the exhausted-chain error carries route_trace; the
    skipped entries (cooling down) are exactly what explains a no_backend."""
    error = exhausted_error([skipped(A), skipped(B)])
    assert error.route_trace is not None
    assert [t["error"] for t in error.route_trace] == [skipped(A).error, skipped(B).error]
