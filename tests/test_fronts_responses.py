"""The pure Responses translators, both ways: request items → chat messages and fields, chat
answers → response objects, chat chunks → the documented event sequence (SPEC §9.1)."""

from __future__ import annotations

from typing import Any

import pytest

from sparks.errors import SparksError
from sparks.fronts.responses import parse_responses_request
from sparks.fronts.responses_output import (
    chat_usage,
    output_text,
    response_from_chat,
    responses_usage,
)
from sparks.fronts.responses_stream import ResponseStream

IMAGE = "data:image/png;base64,iVBORw0KGgo="


def chat_of(body: dict[str, Any], history: list[dict[str, Any]] | None = None) -> dict:
    return parse_responses_request(
        {"model": "m", **body}, (lambda _rid: history or []) if history else None
    ).chat_body


# --- request → chat: every item and part type ----------------------------------------------


@pytest.mark.parametrize(
    ("input_", "messages"),
    [
        ("hi", [{"role": "user", "content": "hi"}]),
        (
            [{"role": "user", "content": [{"type": "input_text", "text": "a"},
                                          {"type": "input_text", "text": "b"}]}],
            [{"role": "user", "content": "a\nb"}],
        ),
        (
            [{"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "look"},
                {"type": "input_image", "image_url": IMAGE, "detail": "low"}]}],
            [{"role": "user", "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": IMAGE, "detail": "low"}}]}],
        ),
        (
            [{"role": "developer", "content": "rules"}, {"role": "system", "content": "sys"}],
            [{"role": "system", "content": "rules"}, {"role": "system", "content": "sys"}],
        ),
        (
            [{"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "text": "done", "annotations": []}]},
             {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]}],
            [{"role": "assistant", "content": "done"}, {"role": "assistant", "content": "no"}],
        ),
        (
            [{"type": "reasoning", "id": "rs_1",
              "summary": [{"type": "summary_text", "text": "think"}]},
             {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
             {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{\"a\":1}"},
             {"type": "function_call_output", "call_id": "c1", "output": "r1"},
             {"type": "function_call_output", "call_id": "c2",
              "output": [{"type": "input_text", "text": "r2"}]}],
            [{"role": "assistant", "content": None, "reasoning_content": "think", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "c2", "type": "function",
                 "function": {"name": "g", "arguments": "{\"a\":1}"}}]},
             {"role": "tool", "tool_call_id": "c1", "content": "r1"},
             {"role": "tool", "tool_call_id": "c2", "content": "r2"}],
        ),
        (
            [{"role": "assistant", "content": "let me check"},
             {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}],
            [{"role": "assistant", "content": "let me check", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}],
        ),
        (
            [{"type": "reasoning", "summary": [],
              "content": [{"type": "reasoning_text", "text": "full"}]},
             {"role": "assistant", "content": "answer"}],
            [{"role": "assistant", "content": "answer", "reasoning_content": "full"}],
        ),
    ],
)  # fmt: skip
def test_input_items_become_chat_messages(input_: Any, messages: list[dict[str, Any]]) -> None:
    assert chat_of({"input": input_})["messages"] == messages


def test_instructions_lead_and_history_comes_before_input() -> None:
    history = [
        {"type": "message", "role": "user", "content": "first"},
        {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "one", "annotations": []}]},
        {"type": "web_search_call", "id": "ws_1"},
    ]  # fmt: skip
    chat = chat_of(
        {"input": "second", "instructions": "be brief", "previous_response_id": "r"}, history
    )
    assert chat["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "one"},
        {"role": "user", "content": "second"},
    ]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"max_output_tokens": 50}, {"max_tokens": 50}),
        ({"temperature": 0.5, "top_p": 0.7}, {"temperature": 0.5, "top_p": 0.7}),
        ({"reasoning": {"effort": "medium", "summary": "auto"}}, {"reasoning_effort": "medium"}),
        ({"reasoning": {"effort": "xhigh"}}, {"reasoning_effort": "high"}),
        ({"text": {"format": {"type": "json_object"}}}, {"response_format": {"type": "json_object"}}),
        (
            {"text": {"format": {"type": "json_schema", "name": "n", "strict": True,
                                 "schema": {"type": "object"}}}},
            {"response_format": {"type": "json_schema", "json_schema": {
                "name": "n", "schema": {"type": "object"}, "strict": True}}},
        ),
        (
            {"tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
             "tool_choice": {"type": "function", "name": "f"}, "parallel_tool_calls": False},
            {"tools": [{"type": "function", "function": {
                "name": "f", "parameters": {"type": "object"}}}],
             "tool_choice": {"type": "function", "function": {"name": "f"}},
             "parallel_tool_calls": False},
        ),
        ({"seed": 7, "fake": {"reply": "x"}}, {"seed": 7, "fake": {"reply": "x"}}),
    ],
)  # fmt: skip
def test_request_fields_map_to_chat_fields(fields: dict, expected: dict) -> None:
    chat = chat_of({"input": "x", **fields})
    assert {k: chat[k] for k in expected} == expected


def test_responses_only_fields_are_not_forwarded_and_hosted_tools_are_named() -> None:
    parsed = parse_responses_request(
        {
            "model": "m",
            "input": "x",
            "store": False,
            "include": ["reasoning.encrypted_content"],
            "prompt_cache_key": "k",
            "metadata": {"a": "b"},
            "text": {"format": {"type": "text"}, "verbosity": "low"},
            "tools": [{"type": "web_search"}, {"type": "local_shell"}],
            "tool_choice": "auto",
        }
    )
    assert set(parsed.chat_body) == {"model", "messages", "stream"}
    assert parsed.dropped_tools == ["web_search", "local_shell"]
    assert parsed.store is False and parsed.echo["metadata"] == {"a": "b"}


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"input": "x"}, "missing_field", "model"),
        ({"model": "m"}, "missing_field", "input"),
        ({"model": "m", "input": []}, "invalid_value", "input"),
        ({"model": "m", "input": [3]}, "invalid_value", "input[0]"),
        ({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}, "invalid_value",
         "input[0].type"),
        ({"model": "m", "input": [{"role": "tool", "content": "x"}]}, "invalid_value",
         "input[0].role"),
        ({"model": "m", "input": ["a", "b", {"role": "user", "content": [{"type": "x"}]}]},
         "invalid_value", "input[0]"),
        ({"model": "m", "input": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
          {"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
         "invalid_value", "input[2].content[0].type"),
        ({"model": "m", "input": [{"role": "user", "content": [
            {"type": "input_image", "file_id": "f"}]}]}, "invalid_value",
         "input[0].content[0].image_url"),
        ({"model": "m", "input": [{"type": "function_call", "call_id": "c", "name": "f"}]},
         "invalid_value", "input[0].arguments"),
        ({"model": "m", "input": [{"type": "function_call_output", "output": "x"}]},
         "invalid_value", "input[0].call_id"),
        ({"model": "m", "input": [{"type": "reasoning", "summary": [{"type": "x"}]}]},
         "invalid_value", "input[0].summary[0].type"),
        ({"model": "m", "input": "x", "tools": [{"type": "function"}]}, "invalid_value",
         "tools[0].name"),
        ({"model": "m", "input": "x", "reasoning": {"effort": "max"}}, "invalid_value",
         "reasoning.effort"),
        ({"model": "m", "input": "x", "text": {"format": {"type": "yaml"}}}, "invalid_value",
         "text.format.type"),
        ({"model": "m", "input": "x", "max_output_tokens": 0}, "invalid_value",
         "max_output_tokens"),
        ({"model": "m", "input": "x", "store": "yes"}, "invalid_value", "store"),
        ({"model": "m", "input": "x", "stream": "yes"}, "invalid_value", "stream"),
    ],
)  # fmt: skip
def test_bad_requests_name_the_path(body: dict, code: str, param: str) -> None:
    with pytest.raises(SparksError) as raised:
        parse_responses_request(body)
    assert (raised.value.status, raised.value.code, raised.value.param) == (400, code, param)


# --- chat answer → response object ---------------------------------------------------------


def request() -> Any:
    return parse_responses_request({"model": "alias", "input": "x", "metadata": {"k": "v"}})


def test_chat_completion_becomes_reasoning_message_and_function_call_items() -> None:
    payload = {
        "choices": [
            {
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": "checking",
                    "reasoning_content": "hmm",
                    "tool_calls": [
                        {"id": "c1", "type": "function",
                         "function": {"name": "f", "arguments": "{}"}}
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8,
                  "prompt_tokens_details": {"cached_tokens": 2},
                  "completion_tokens_details": {"reasoning_tokens": 1}},
    }  # fmt: skip
    response = response_from_chat(request(), payload, "up/m")
    assert response["object"] == "response" and response["status"] == "completed"
    assert response["model"] == "up/m" and response["metadata"] == {"k": "v"}
    assert [i["type"] for i in response["output"]] == ["reasoning", "message", "function_call"]
    reasoning, message, call = response["output"]
    assert reasoning["summary"] == [{"type": "summary_text", "text": "hmm"}]
    assert message["role"] == "assistant" and message["status"] == "completed"
    assert message["content"][0]["type"] == "output_text" and output_text(response) == "checking"
    assert (call["call_id"], call["name"], call["arguments"]) == ("c1", "f", "{}")
    assert call["id"].startswith("fc_") and message["id"].startswith("msg_")
    assert response["usage"] == {
        "input_tokens": 5,
        "input_tokens_details": {"cached_tokens": 2},
        "output_tokens": 3,
        "output_tokens_details": {"reasoning_tokens": 1},
        "total_tokens": 8,
    }


def test_length_finish_is_incomplete_and_usage_round_trips() -> None:
    payload = {"choices": [{"finish_reason": "length", "message": {"content": "cut"}}]}
    response = response_from_chat(request(), payload, "m")
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    assert chat_usage(responses_usage(usage)) == usage


# --- chat chunks → events: the documented order, exhaustively --------------------------------


def chunk(finish: str | None = None, **delta: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def tool_delta(index: int, arguments: str, name: str | None = None) -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if name:
        call.update(id=f"call_{index}", type="function")
        call["function"]["name"] = name
    return chunk(tool_calls=[call])


def run(chunks: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], ResponseStream]:
    stream = ResponseStream(request(), "up/m")
    events = stream.start()
    for item in chunks:
        events += stream.feed(item)
    return events + stream.finish(), stream


REASONING = [
    "response.output_item.added",
    "response.reasoning_summary_part.added",
    "response.reasoning_summary_text.delta",
    "response.reasoning_summary_text.delta",
    "response.reasoning_summary_text.done",
    "response.reasoning_summary_part.done",
    "response.output_item.done",
]
TEXT = [
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
]
CALL = [
    "response.output_item.added",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.output_item.done",
]


@pytest.mark.parametrize(
    ("chunks", "middle", "kinds"),
    [
        ([chunk(role="assistant", content=""), chunk(content="he"), chunk(content="llo"),
          chunk("stop")], TEXT, ["message"]),
        ([chunk(reasoning_content="a"), chunk(reasoning_content="b"), chunk(content="x"),
          chunk(content="y"), chunk("stop")], REASONING + TEXT, ["reasoning", "message"]),
        ([tool_delta(0, '{"a"', "f"), tool_delta(0, ":1}"), tool_delta(1, "{", "g"),
          tool_delta(1, "}"), chunk("tool_calls")], CALL + CALL,
         ["function_call", "function_call"]),
        ([chunk(reasoning_content="a"), chunk(reasoning_content="b"), chunk(content="x"),
          chunk(content="y"), tool_delta(0, "{", "f"), tool_delta(0, "}"),
          chunk("tool_calls")], REASONING + TEXT + CALL,
         ["reasoning", "message", "function_call"]),
    ],
)  # fmt: skip
def test_stream_event_order_matches_the_documented_sequence(
    chunks: list[dict[str, Any]], middle: list[str], kinds: list[str]
) -> None:
    events, stream = run([*chunks, {"choices": [], "usage": {"prompt_tokens": 2,
                                                             "completion_tokens": 4}}])  # fmt: skip
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        *middle,
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    final = events[-1]["response"]
    assert [i["type"] for i in final["output"]] == kinds
    assert final["usage"]["total_tokens"] == 6 and final["status"] == "completed"
    added = [e for e in events if e["type"] == "response.output_item.added"]
    done = [e for e in events if e["type"] == "response.output_item.done"]
    assert [e["output_index"] for e in added] == list(range(len(kinds)))
    assert [e["item"] for e in done] == final["output"]
    for event in events:
        if "item_id" in event:
            assert event["item_id"] == final["output"][event["output_index"]]["id"]
    assert (
        events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    )
    assert stream.response is final


def test_stream_item_contents() -> None:
    events, _ = run([chunk(reasoning_content="th"), chunk(content="hi"),
                     tool_delta(0, '{"q":', "search"), tool_delta(0, "1}"), chunk("tool_calls")])  # fmt: skip
    by_type = {e["type"]: e for e in events}
    assert by_type["response.reasoning_summary_text.done"]["text"] == "th"
    assert by_type["response.output_text.done"]["text"] == "hi"
    assert by_type["response.content_part.done"]["part"]["text"] == "hi"
    done = by_type["response.function_call_arguments.done"]
    assert done["arguments"] == '{"q":1}' and done["name"] == "search"
    call = events[-1]["response"]["output"][2]
    assert (call["call_id"], call["name"], call["status"]) == ("call_0", "search", "completed")
    added = [e for e in events if e["type"] == "response.output_item.added"]
    assert added[1]["item"]["status"] == "in_progress" and added[2]["item"]["arguments"] == ""


def test_length_ends_with_response_incomplete() -> None:
    events, _ = run([chunk(content="cut"), chunk("length")])
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_empty_stream_still_completes() -> None:
    events, _ = run([chunk(role="assistant", content=""), chunk("stop")])
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.completed",
    ]


def test_failure_after_the_start_is_response_failed_with_items_so_far() -> None:
    stream = ResponseStream(request(), "up/m")
    events = stream.start() + stream.feed(chunk(content="partial"))
    (failed,) = stream.failure("upstream_error", "cut")
    assert failed["type"] == "response.failed"
    assert failed["sequence_number"] == events[-1]["sequence_number"] + 1
    assert failed["response"]["status"] == "failed"
    assert failed["response"]["error"] == {"code": "upstream_error", "message": "cut"}
    assert failed["response"]["output"][0]["content"][0]["text"] == "partial"
