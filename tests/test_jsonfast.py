"""The request path's JSON helpers behave the same with orjson and with the standard library."""

from __future__ import annotations

import math

import pytest

from sparks import jsonfast

from .conftest import skip_or_fail

VALUE = {"model": "up/m", "messages": [{"role": "user", "content": "héllo ✓"}], "n": 1, "x": None}


@pytest.fixture(params=["orjson", "stdlib"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "stdlib":
        monkeypatch.setattr(jsonfast, "orjson", None)
    elif jsonfast.orjson is None:
        skip_or_fail("orjson is not installed (it is a dependency: pip install -e .)")
    return request.param


def test_round_trip_is_compact_utf8(backend: str) -> None:
    data = jsonfast.dumps(VALUE)
    assert b", " not in data and "héllo ✓".encode() in data
    assert jsonfast.loads(data) == VALUE


def test_values_json_cannot_hold_are_rendered_with_str(backend: str) -> None:
    from pathlib import Path

    assert jsonfast.loads(jsonfast.dumps({"p": Path("/x")})) == {"p": "/x"}
    assert jsonfast.loads(jsonfast.dumps({"big": 2**70})) == {"big": 2**70}


def test_lenient_inputs_still_parse(backend: str) -> None:
    assert jsonfast.loads(b'{"big": 123456789012345678901234567890}')["big"] > 2**64
    assert math.isnan(jsonfast.loads(b'{"v": NaN}')["v"])


def test_invalid_json_raises_value_error(backend: str) -> None:
    with pytest.raises(ValueError):
        jsonfast.loads(b'{"model": ')
