"""The Responses front through the real app and the fake upstream, driven by the official
`openai` SDK (`client.responses.create`), against a backend model, `sparks/scout` and a native
`api = "responses"` backend."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest

from sparks.config import parse_config

from .conftest import API_KEY, AUTH, make_config, read_events, upstream_url

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "notes.txt").write_text("The limiter lives in sparks/limiter.py\n")
    return ws


@pytest.fixture
async def app(sparks_client: Any, upstream: Any, tmp_path: Path, workspace: Path) -> Any:
    ghosts = [
        {
            "name": "scout",
            "description": "Explores files; changes nothing.",
            "tools": ["read_file", "list_dir"],
            "read_only": True,
            "workspace": str(workspace),
        }
    ]
    config = make_config(
        tmp_path,
        {"up": upstream_url(upstream)},
        ghosts=ghosts,
        ghost_defaults={"model": "up/fake-model", "sandbox": "none"},
    )
    return await sparks_client(config)


@pytest.fixture
async def oai(app: Any) -> Any:
    """The official SDK pointed at the Sparks app (closed after the test)."""
    async with openai.AsyncOpenAI(
        base_url=str(app.make_url("/v1")), api_key=API_KEY, max_retries=0
    ) as client:
        yield client


@pytest.fixture
async def native_oai(native: Any) -> Any:
    async with openai.AsyncOpenAI(
        base_url=str(native.make_url("/v1")), api_key=API_KEY, max_retries=0
    ) as client:
        yield client


def forwarded(upstream: Any, path: str = "/v1/chat/completions") -> list[dict[str, Any]]:
    return [r.json for r in upstream.app[_recorded_key(upstream)] if r.path == path]


def _recorded_key(upstream: Any) -> Any:
    from .conftest import load_script

    return load_script("fake_upstream").RECORDED


def events_of(tmp_path: Path, name: str) -> list[dict[str, Any]]:
    return [e for e in read_events(tmp_path / "events.jsonl") if e["event"] == name]


# --- a backend model ---------------------------------------------------------------------


async def test_sdk_create_returns_text_usage_and_the_sparks_model(
    app: Any, oai: Any, upstream: Any
) -> None:
    response = await oai.responses.create(
        model="up/fake-model", input="hello there", instructions="Be brief."
    )
    assert response.output_text == "echo: hello there"
    assert response.model == "up/fake-model" and response.status == "completed"
    assert response.id.startswith("resp_") and response.output[0].type == "message"
    assert response.usage is not None and response.usage.input_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    sent = forwarded(upstream)[-1]
    assert sent["model"] == "fake-model"
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello there"},
    ]
    assert "input" not in sent and "instructions" not in sent


async def test_sdk_stream_emits_the_documented_sequence(app: Any, oai: Any, tmp_path: Path) -> None:
    stream = await oai.responses.create(model="up/fake-model", input="one two", stream=True)
    events = [event async for event in stream]
    kinds = [e.type for e in events]
    deltas = kinds.count("response.output_text.delta")
    assert deltas >= 2
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * deltas,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    assert final.output_text == "echo: one two" and final.model == "up/fake-model"
    assert final.usage is not None and final.usage.output_tokens > 0
    received = events_of(tmp_path, "request.received")[-1]
    assert received["api"] == "responses" and received["stream"] is True
    completed = events_of(tmp_path, "request.completed")[-1]
    assert completed["usage"]["total_tokens"] > 0


async def test_function_tool_round_trip_streaming_and_not(
    app: Any, oai: Any, upstream: Any, fake: Any
) -> None:
    client = oai
    call = {"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_w1"}
    fake.queue_script(upstream.app, "fake-model", [{"tool_calls": [call]}])
    first = await client.responses.create(
        model="up/fake-model", input="weather in Paris?", tools=[WEATHER_TOOL], store=False
    )
    (item,) = first.output
    assert item.type == "function_call" and item.call_id == "call_w1"
    assert item.name == "get_weather" and json.loads(item.arguments) == {"city": "Paris"}
    sent = forwarded(upstream)[-1]
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    fake.queue_script(upstream.app, "fake-model", [{"reply": "It is {last_tool_result}."}])
    history = [
        {"role": "user", "content": "weather in Paris?"},
        item.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": "call_w1", "output": "sunny"},
    ]
    stream = await client.responses.create(
        model="up/fake-model", input=history, tools=[WEATHER_TOOL], stream=True, store=False
    )
    events = [e async for e in stream]
    assert events[-1].response.output_text == "It is sunny."
    messages = forwarded(upstream)[-1]["messages"]
    assert messages[1]["tool_calls"][0]["id"] == "call_w1"
    assert messages[2] == {"role": "tool", "tool_call_id": "call_w1", "content": "sunny"}
    fake.queue_script(upstream.app, "fake-model", [{"tool_calls": [call]}])
    stream = await client.responses.create(
        model="up/fake-model", input="again", tools=[WEATHER_TOOL], stream=True
    )
    kinds = [e.type async for e in stream]
    assert kinds[2] == "response.output_item.added"
    assert "response.function_call_arguments.delta" in kinds
    assert kinds[-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]


async def test_previous_response_id_continues_the_conversation(
    app: Any, oai: Any, upstream: Any
) -> None:
    client = oai
    first = await client.responses.create(model="up/fake-model", input="my name is Ada")
    second = await client.responses.create(
        model="up/fake-model", input="what is my name?", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    assert forwarded(upstream)[-1]["messages"] == [
        {"role": "user", "content": "my name is Ada"},
        {"role": "assistant", "content": "echo: my name is Ada"},
        {"role": "user", "content": "what is my name?"},
    ]
    third = await client.responses.create(
        model="up/fake-model", input="and now?", previous_response_id=second.id
    )
    assert len(forwarded(upstream)[-1]["messages"]) == 5 and third.status == "completed"


async def test_stored_responses_retrieve_list_delete_and_404(app: Any, oai: Any) -> None:
    client = oai
    kept = await client.responses.create(model="up/fake-model", input="keep me")
    again = await client.responses.retrieve(kept.id)
    assert again.output_text == "echo: keep me"
    items = await client.responses.input_items.list(kept.id)
    assert [i.type for i in items.data] == ["message"] and items.data[0].id
    deleted = await app.delete(f"/v1/responses/{kept.id}", headers=AUTH)
    assert (await deleted.json())["deleted"] is True
    with pytest.raises(openai.NotFoundError) as raised:
        await client.responses.retrieve(kept.id)
    assert raised.value.body["code"] == "not_found"
    unstored = await client.responses.create(model="up/fake-model", input="x", store=False)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(unstored.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.create(
            model="up/fake-model", input="x", previous_response_id="resp_nope"
        )


async def test_hosted_tools_are_not_offered_and_are_logged(
    app: Any, oai: Any, upstream: Any, tmp_path: Path
) -> None:
    tools = [{"type": "web_search"}, WEATHER_TOOL, {"type": "file_search", "vector_store_ids": []}]
    response = await app.post(
        "/v1/responses",
        json={"model": "up/fake-model", "input": "hi", "tools": tools},
        headers=AUTH,
    )
    assert response.status == 200
    sent = forwarded(upstream)[-1]
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather"]
    assert events_of(tmp_path, "request.received")[-1]["dropped_tools"] == [
        "web_search",
        "file_search",
    ]


async def test_options_map_to_chat_fields(app: Any, oai: Any, upstream: Any) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    response = await oai.responses.create(
        model="up/fake-model",
        input="json please",
        max_output_tokens=64,
        temperature=0.2,
        top_p=0.9,
        reasoning={"effort": "low"},
        text={"format": {"type": "json_schema", "name": "thing", "schema": schema}},
        tool_choice="none",
        tools=[WEATHER_TOOL],
        parallel_tool_calls=False,
    )
    assert response.status == "completed"
    sent = forwarded(upstream)[-1]
    assert sent["max_tokens"] == 64 and sent["temperature"] == 0.2 and sent["top_p"] == 0.9
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "thing", "schema": schema},
    }
    assert sent["tool_choice"] == "none" and sent["parallel_tool_calls"] is False
    assert (
        sent.get("reasoning_effort") == "low" or "think" in sent or "chat_template_kwargs" in sent
    )


async def test_reasoning_becomes_a_reasoning_item_and_summary_events(app: Any, oai: Any) -> None:
    client = oai
    fake = {"reasoning": "thinking it over", "reply": "done"}
    whole = await client.responses.create(
        model="up/fake-model", input="think", extra_body={"fake": fake}
    )
    assert [i.type for i in whole.output] == ["reasoning", "message"]
    assert whole.output[0].summary[0].text == "thinking it over"
    stream = await client.responses.create(
        model="up/fake-model", input="think", stream=True, extra_body={"fake": fake}
    )
    kinds = [e.type async for e in stream]
    assert kinds[2:5] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
    ]
    assert kinds.index("response.reasoning_summary_part.done") < kinds.index(
        "response.content_part.added"
    )


# --- failures --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"input": "hi"}, "missing_field", "model"),
        ({"model": "up/fake-model"}, "missing_field", "input"),
        ({"model": "up/fake-model", "input": [{"type": "bogus"}]}, "invalid_value", "input[0].type"),
        (
            {
                "model": "up/fake-model",
                "input": [
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "content": "b"},
                    {"role": "user", "content": [{"type": "input_audio", "data": "x"}]},
                ],
            },
            "invalid_value",
            "input[2].content[0].type",
        ),
        ({"model": "up/fake-model", "input": "x", "reasoning": {"effort": "max"}}, "invalid_value",
         "reasoning.effort"),
    ],
)  # fmt: skip
async def test_bad_input_is_400_naming_the_path(
    app: Any, oai: Any, body: dict[str, Any], code: str, param: str
) -> None:
    response = await app.post("/v1/responses", json=body, headers=AUTH)
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["code"] == code and error["param"] == param
    assert param.split(".")[-1].split("[")[0] in error["message"]


async def test_upstream_failure_before_the_start_is_an_openai_json_error(
    app: Any, oai: Any
) -> None:
    response = await app.post(
        "/v1/responses",
        json={"model": "up/fake-model", "input": "x", "stream": True, "fake": {"status": 500}},
        headers=AUTH,
    )
    assert response.status == 502
    assert (await response.json())["error"]["code"] == "upstream_error"


async def test_a_stream_cut_after_the_start_ends_with_response_failed(
    app: Any, oai: Any, tmp_path: Path
) -> None:
    response = await app.post(
        "/v1/responses",
        json={
            "model": "up/fake-model",
            "input": "one two three four five",
            "stream": True,
            "fake": {"fail_after_chunks": 2},
        },
        headers=AUTH,
    )
    text = await response.text()
    payloads = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    assert payloads[0]["type"] == "response.created"
    assert payloads[-1]["type"] == "response.failed"
    assert payloads[-1]["response"]["error"]["code"] == "upstream_error"
    assert [p["sequence_number"] for p in payloads] == list(range(len(payloads)))
    assert "[DONE]" not in text
    assert events_of(tmp_path, "request.failed")[-1]["code"] == "upstream_error"


# --- sparks/scout ----------------------------------------------------------------------------


async def test_scout_answers_through_the_responses_front(
    app: Any, oai: Any, upstream: Any, fake: Any
) -> None:
    client = oai
    read = {"name": "read_file", "arguments": {"path": "notes.txt"}}
    turns = [{"tool_calls": [read]}, {"reply": "Found: {last_tool_result}"}]
    fake.queue_script(upstream.app, "fake-model", turns)
    whole = await client.responses.create(model="sparks/scout", input="where is the limiter?")
    assert whole.model == "sparks/scout"
    assert "sparks/limiter.py" in whole.output_text
    assert whole.output[0].type == "reasoning"  # the ghost's progress lines
    fake.queue_script(upstream.app, "fake-model", turns)
    stream = await client.responses.create(
        model="sparks/scout", input="where is the limiter?", stream=True
    )
    events = [e async for e in stream]
    kinds = [e.type for e in events]
    assert "response.reasoning_summary_text.delta" in kinds
    assert kinds[-1] == "response.completed"
    assert "sparks/limiter.py" in events[-1].response.output_text
    follow = await client.responses.create(
        model="sparks/scout", input="thanks", previous_response_id=events[-1].response.id
    )
    assert follow.status == "completed"


# --- a native `api = "responses"` backend ----------------------------------------------------


@pytest.fixture
async def native(sparks_client: Any, upstream: Any, tmp_path: Path) -> Any:
    """Sparks with one backend declared `api = "responses"` (the fake's /v1/responses)."""
    config = parse_config(
        {
            "observer": {"path": str(tmp_path / "events.jsonl"), "console": False},
            "backends": {"oa": {"base_url": upstream_url(upstream), "api": "responses"}},
        },
        None,
    )
    return await sparks_client(config)


async def test_native_backend_gets_the_request_as_sent(
    native: Any, native_oai: Any, upstream: Any, tmp_path: Path
) -> None:
    client = native_oai
    whole = await client.responses.create(
        model="oa/fake-model", input="hi native", tools=[{"type": "web_search"}]
    )
    assert whole.output_text == "echo: hi native" and whole.model == "oa/fake-model"
    sent = forwarded(upstream, "/v1/responses")[-1]
    assert sent["model"] == "fake-model" and sent["tools"] == [{"type": "web_search"}]
    stream = await client.responses.create(model="oa/fake-model", input="hi again", stream=True)
    events = [e async for e in stream]
    assert events[0].response.model == "oa/fake-model"
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == "echo: hi again"
    assert events_of(tmp_path, "request.completed")[-1]["usage"]["total_tokens"] > 0
    follow = await client.responses.create(
        model="oa/fake-model", input="more", previous_response_id=events[-1].response.id
    )
    assert follow.status == "completed"
    sent = forwarded(upstream, "/v1/responses")[-1]
    assert "previous_response_id" not in sent and len(sent["input"]) == 3


async def test_native_stream_without_its_closing_event_ends_failed(native: Any) -> None:
    response = await native.post(
        "/v1/responses",
        json={"model": "oa/fake-model", "input": "x", "stream": True, "fake": {"no_completed": 1}},
        headers=AUTH,
    )
    text = await response.text()
    payloads = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    assert payloads[-1]["type"] == "response.failed"
    assert payloads[-1]["sequence_number"] == payloads[-2]["sequence_number"] + 1
