"""The Anthropic Messages translator both ways, without a server (SPEC §9.2): every block,
delta, stop reason and error type, and tool-call ids that map back to their calls."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sparks.errors import SparksError
from sparks.fronts.messages import (
    chat_tool_id,
    error_object,
    error_type,
    estimate_tokens,
    to_chat,
    tool_use_id,
)
from sparks.fronts.messages_answer import (
    message_from_chat,
    stop_reason,
    tool_input,
    usage_from_chat,
    usage_to_chat,
)
from sparks.fronts.messages_stream import MessageStream, NativeStream, error_event, ping_event


def chat_of(**body: Any) -> dict[str, Any]:
    body.setdefault("model", "m")
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return to_chat(body).chat


def events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """`event:`/`data:` pairs, each event's name checked against its data's type."""
    out = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        name_line, data_line = block.split("\n")
        name, data = name_line.removeprefix("event: "), json.loads(data_line.removeprefix("data: "))
        assert data["type"] == name
        out.append((name, data))
    return out


# --- requests: Anthropic → chat ------------------------------------------------------------


@pytest.mark.parametrize(
    ("system", "expected"),
    [
        ("Be brief.", "Be brief."),
        ([{"type": "text", "text": "A", "cache_control": {"type": "ephemeral"}}], "A"),
        ([{"type": "text", "text": "A"}, {"type": "text", "text": "B"}], "A\n\nB"),
    ],
)
def test_system_string_or_text_blocks_becomes_the_first_system_message(
    system: Any, expected: str
) -> None:
    assert chat_of(system=system)["messages"][0] == {"role": "system", "content": expected}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("hello", "hello"),
        ([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "a\n\nb"),
        (
            [
                {"type": "text", "text": "look"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "QQ=="},
                },
            ],
            [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,QQ=="}},
            ],
        ),
        (
            [{"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}],
            [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
        ),
        ([{"type": "document", "source": {"type": "text", "data": "doc"}}], "doc"),
    ],
)
def test_user_blocks_become_chat_content(content: Any, expected: Any) -> None:
    messages = chat_of(messages=[{"role": "user", "content": content}])["messages"]
    assert messages == [{"role": "user", "content": expected}]


def test_assistant_text_thinking_and_tool_use_then_tool_results_in_order() -> None:
    chat = chat_of(
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "need a tool", "signature": "sig"},
                    {"type": "redacted_thinking", "data": "xx"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {"c": "P"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "t", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "content": [{"type": "text", "text": "boom"}],
                        "is_error": True,
                    },
                    {"type": "text", "text": "thanks"},
                ],
            },
        ]
    )
    assert chat["messages"][1:] == [
        {
            "role": "assistant",
            "content": "Checking.",
            "reasoning_content": "need a tool",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "w", "arguments": '{"c": "P"}'},
                },
                {"id": "toolu_2", "type": "function", "function": {"name": "t", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: boom"},
        {"role": "user", "content": "thanks"},
    ]


def test_tool_result_images_follow_in_a_user_message() -> None:
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "QQ=="},
    }
    result = {"type": "tool_result", "tool_use_id": "t1", "content": [image]}
    messages = chat_of(messages=[{"role": "user", "content": [result]}])["messages"]
    assert messages[0] == {"role": "tool", "tool_call_id": "t1", "content": ""}
    assert messages[1]["content"][0]["type"] == "image_url"


def test_mid_conversation_system_message_is_kept() -> None:
    messages = chat_of(
        messages=[{"role": "system", "content": "be kind"}, {"role": "user", "content": "x"}]
    )
    assert messages["messages"][0] == {"role": "system", "content": "be kind"}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "w"}, {"type": "function", "function": {"name": "w"}}),
    ],
)
def test_tools_and_tool_choice(choice: dict[str, Any], expected: Any) -> None:
    tool = {"name": "w", "description": "weather", "input_schema": {"type": "object"}}
    chat = chat_of(tools=[tool], tool_choice=choice)
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {"name": "w", "parameters": {"type": "object"}, "description": "weather"},
        }
    ]
    assert chat["tool_choice"] == expected


def test_server_tools_are_not_offered_and_are_named() -> None:
    tools = [
        {"type": "web_search_20250305", "name": "web_search"},
        {"type": "bash_20250124", "name": "bash"},
        {"name": "mine", "input_schema": {"type": "object"}},
    ]
    translated = to_chat(
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": tools}
    )
    assert [t["function"]["name"] for t in translated.chat["tools"]] == ["mine"]
    assert translated.dropped_tools == ["web_search_20250305", "bash_20250124"]


def test_disable_parallel_tool_use_and_no_tools_left() -> None:
    tool = {"name": "w", "input_schema": {}}
    chat = chat_of(tools=[tool], tool_choice={"type": "auto", "disable_parallel_tool_use": True})
    assert chat["parallel_tool_calls"] is False
    assert "tool_choice" not in chat_of(tool_choice={"type": "auto"})


def test_sampling_fields_map_and_anthropic_only_fields_are_consumed() -> None:
    translated = to_chat(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            "max_tokens": 50,
            "stop_sequences": ["END"],
            "temperature": 0.2,
            "top_p": 0.9,
            "top_k": 5,
            "metadata": {"user_id": "u"},
            "context_management": {"edits": []},
            "stream": True,
            "seed": 7,
        }
    )
    chat = translated.chat
    assert chat["max_tokens"] == 50 and chat["stop"] == ["END"] and chat["stream"] is True
    assert chat["temperature"] == 0.2 and chat["top_p"] == 0.9 and chat["seed"] == 7
    assert not {"top_k", "metadata", "context_management", "stop_sequences"} & chat.keys()
    assert translated.stop_sequences == ("END",) and translated.stream


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"thinking": {"type": "enabled", "budget_tokens": 2048}},
            {"enable_thinking": True, "reasoning_effort": "low"},
        ),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 8000}},
            {"enable_thinking": True, "reasoning_effort": "medium"},
        ),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 32000}},
            {"enable_thinking": True, "reasoning_effort": "high"},
        ),
        ({"thinking": {"type": "disabled"}}, {"enable_thinking": False}),
        (
            {"thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}},
            {"enable_thinking": True, "reasoning_effort": "high"},
        ),
    ],
)
def test_thinking_maps_to_the_chat_reasoning_fields(body: dict, expected: dict) -> None:
    chat = chat_of(**body)
    assert {k: chat[k] for k in ("enable_thinking", "reasoning_effort") if k in chat} == expected


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
        (
            {"messages": [{"role": "user", "content": [{"type": "audio"}]}]},
            "messages[0].content[0].type",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]},
            "messages[0].content[0].source",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_result"}]}]},
            "messages[0].content[0].tool_use_id",
        ),
        (
            {"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "a"}]}]},
            "messages[0].content[0].name",
        ),
        ({"system": 5}, "system"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stop_sequences": "END"}, "stop_sequences"),
        ({"tool_choice": {"type": "sometimes"}}, "tool_choice"),
        ({"thinking": {"type": "maybe"}}, "thinking"),
        ({"stream": "yes"}, "stream"),
    ],
)
def test_invalid_requests_are_400s_naming_the_field(body: dict, param: str) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], **body}
    with pytest.raises(SparksError) as caught:
        to_chat(body)
    assert caught.value.status == 400 and caught.value.param == param


def test_missing_messages_is_missing_field() -> None:
    with pytest.raises(SparksError) as caught:
        to_chat({"model": "m"})
    assert caught.value.code == "missing_field"


# --- tool-call ids both ways --------------------------------------------------------------


@pytest.mark.parametrize(
    "chat_id", ["call_abc", "toolu_01A", "functions.get_weather:0", "a b/c", "toolu_sx_x"]
)
def test_tool_ids_round_trip_and_are_valid_tool_use_ids(chat_id: str) -> None:
    use_id = tool_use_id(chat_id)
    assert use_id.replace("_", "").replace("-", "").isalnum()
    assert chat_tool_id(use_id) == chat_id


def test_a_tool_result_finds_its_call_through_an_answer() -> None:
    """An answer's tool_use id, sent back in tool_use and tool_result, is the chat id again."""
    payload = chat_payload(tool_calls=[call("functions.w:0", "w", '{"c": 1}')], finish="tool_calls")
    use_id = message_from_chat(payload, "s")["content"][0]["id"]
    chat = chat_of(
        messages=[
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": use_id, "name": "w", "input": {"c": 1}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use_id, "content": "ok"}],
            },
        ]
    )
    assert chat["messages"][1]["tool_calls"][0]["id"] == "functions.w:0"
    assert chat["messages"][2]["tool_call_id"] == "functions.w:0"


def test_a_missing_chat_id_gets_a_fresh_tool_use_id() -> None:
    assert tool_use_id(None).startswith("toolu_") and tool_use_id("") != tool_use_id("")


# --- answers: chat → Anthropic ------------------------------------------------------------


def call(cid: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": arguments}}


def chat_payload(content: Any = None, finish: str = "stop", **message: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, **message},
                "finish_reason": finish,
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14},
    }


def test_whole_answer_has_thinking_text_and_tool_use_blocks_in_order() -> None:
    payload = chat_payload(
        "Let me check.",
        "tool_calls",
        reasoning_content="hmm",
        tool_calls=[call("call_1", "w", '{"c": "P"}')],
    )
    message = message_from_chat(payload, "up/m")
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["id"].startswith("msg_") and message["model"] == "up/m"
    assert message["content"] == [
        {"type": "thinking", "thinking": "hmm", "signature": ""},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "call_1", "name": "w", "input": {"c": "P"}},
    ]
    assert message["stop_reason"] == "tool_use" and message["stop_sequence"] is None
    assert message["usage"]["input_tokens"] == 10 and message["usage"]["output_tokens"] == 4


@pytest.mark.parametrize(
    ("finish", "tools", "matched", "expected"),
    [
        ("stop", False, None, "end_turn"),
        (None, False, None, "end_turn"),
        ("length", False, None, "max_tokens"),
        ("tool_calls", True, None, "tool_use"),
        ("stop", True, None, "tool_use"),
        ("stop", False, "END", "stop_sequence"),
        ("stop", False, "OTHER", "end_turn"),
        ("content_filter", False, None, "refusal"),
    ],
)
def test_stop_reasons(finish: Any, tools: bool, matched: Any, expected: str) -> None:
    assert stop_reason(finish, tools, matched, ("END",)) == expected


def test_stop_sequence_is_reported_when_the_backend_names_it() -> None:
    payload = chat_payload("a", "stop")
    payload["choices"][0]["stop_reason"] = "END"
    message = message_from_chat(payload, "m", ("END",))
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "END")


def test_usage_both_ways_with_cached_tokens() -> None:
    chat = {
        "prompt_tokens": 100,
        "completion_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 60},
    }
    assert usage_from_chat(chat) == {
        "input_tokens": 40,
        "output_tokens": 7,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 60,
    }
    assert usage_to_chat(
        {"input_tokens": 40, "cache_read_input_tokens": 60, "output_tokens": 7}
    ) == {
        "prompt_tokens": 100,
        "completion_tokens": 7,
        "total_tokens": 107,
    }
    assert usage_from_chat(None)["input_tokens"] == 0


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ("", {}),
        ("not json", {"_raw_arguments": "not json"}),
        ("[1]", {"_raw_arguments": "[1]"}),
    ],
)
def test_tool_input_from_arguments(arguments: str, expected: dict) -> None:
    assert tool_input(arguments) == expected


# --- streams ------------------------------------------------------------------------------


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "c", "choices": choices, **extra}


def run_stream(chunks: list[dict[str, Any]], stops: tuple[str, ...] = ()) -> list[tuple[str, dict]]:
    stream = MessageStream("msg_1", "up/m", stops)
    raw = b"".join(stream.feed(c) for c in chunks) + stream.finish()
    return events(raw)


def test_stream_sequence_with_thinking_text_and_tool_use() -> None:
    seq = run_stream(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"reasoning_content": "think"}),
            chunk({"content": "Hi"}),
            chunk({"content": "!"}),
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_9",
                            "type": "function",
                            "function": {"name": "w", "arguments": ""},
                        }
                    ]
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"c":'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "P"}'}}]}),
            chunk({}, "tool_calls"),
            chunk(None, usage={"prompt_tokens": 9, "completion_tokens": 3}),
        ]
    )
    names = [name for name, _ in seq]
    assert names == [
        "message_start",
        "content_block_start", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "message_delta",
        "message_stop",
    ]  # fmt: skip
    start = seq[0][1]["message"]
    assert start["id"] == "msg_1" and start["model"] == "up/m" and start["content"] == []
    blocks = [d["content_block"] for n, d in seq if n == "content_block_start"]
    assert blocks == [
        {"type": "thinking", "thinking": "", "signature": ""},
        {"type": "text", "text": ""},
        {"type": "tool_use", "id": "call_9", "name": "w", "input": {}},
    ]
    deltas = [d["delta"] for n, d in seq if n == "content_block_delta"]
    assert deltas == [
        {"type": "thinking_delta", "thinking": "think"},
        {"type": "text_delta", "text": "Hi"},
        {"type": "text_delta", "text": "!"},
        {"type": "input_json_delta", "partial_json": '{"c":'},
        {"type": "input_json_delta", "partial_json": ' "P"}'},
    ]
    assert [d["index"] for n, d in seq if n.startswith("content_block")] == [
        0,
        0,
        0,
        1,
        1,
        1,
        1,
        2,
        2,
        2,
        2,
    ]
    final = seq[-2][1]
    assert final["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert final["usage"]["output_tokens"] == 3 and final["usage"]["input_tokens"] == 9


def test_stream_two_tool_calls_and_a_name_that_arrives_late() -> None:
    seq = run_stream(
        [
            chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"arguments": "{"}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"name": "late", "arguments": "}"}}]}),
            chunk(
                {
                    "tool_calls": [
                        {"index": 1, "id": "b", "function": {"name": "two", "arguments": "{}"}}
                    ]
                }
            ),
            chunk({}, "tool_calls"),
        ]
    )
    starts = [d["content_block"] for n, d in seq if n == "content_block_start"]
    assert [(b["id"], b["name"]) for b in starts] == [("a", "late"), ("b", "two")]
    deltas = [
        (d["index"], d["delta"]["partial_json"]) for n, d in seq if n == "content_block_delta"
    ]
    assert deltas == [(0, "{}"), (1, "{}")]


@pytest.mark.parametrize(
    ("finish", "expected"), [("stop", "end_turn"), ("length", "max_tokens"), (None, "end_turn")]
)
def test_stream_stop_reasons(finish: str | None, expected: str) -> None:
    seq = run_stream([chunk({"content": "x"}), chunk({}, finish)])
    assert seq[-2][1]["delta"]["stop_reason"] == expected


def test_stream_stop_sequence() -> None:
    seq = run_stream(
        [
            chunk({"content": "x"}),
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "stop_reason": "END"}]},
        ],
        ("END",),
    )
    assert seq[-2][1]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}


def test_empty_stream_still_starts_and_stops() -> None:
    assert [n for n, _ in run_stream([])] == ["message_start", "message_delta", "message_stop"]


def test_ping_and_error_events() -> None:
    assert events(ping_event()) == [("ping", {"type": "ping"})]
    [(name, data)] = events(error_event(SparksError(502, "upstream_error", "cut")))
    assert name == "error" and data["error"] == {"type": "api_error", "message": "cut"}


# --- native passthrough -------------------------------------------------------------------


def test_native_stream_rewrites_model_and_collects_usage() -> None:
    native = NativeStream("claude/sonnet")
    start = {
        "type": "message_start",
        "message": {"model": "claude-sonnet", "usage": {"input_tokens": 5, "output_tokens": 1}},
    }
    out = native.feed(json.dumps(start).encode())
    native.feed(
        b'{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}'
    )
    assert not native.stopped
    native.feed(b'{"type":"message_stop"}')
    assert events(out)[0][1]["message"]["model"] == "claude/sonnet"
    assert native.stopped and native.chat_usage() == {
        "prompt_tokens": 5,
        "completion_tokens": 9,
        "total_tokens": 14,
    }


def test_native_error_event_keeps_its_type() -> None:
    with pytest.raises(SparksError) as caught:
        NativeStream("m").feed(
            b'{"type":"error","error":{"type":"overloaded_error","message":"busy"}}'
        )
    assert error_object(caught.value)["error"] == {"type": "overloaded_error", "message": "m: busy"}


def test_native_untyped_event_is_rejected() -> None:
    with pytest.raises(ValueError):
        NativeStream("m").feed(b"[1]")


# --- errors and counting ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
        (418, "invalid_request_error"),
        (599, "api_error"),
    ],
)
def test_error_types_by_status(status: int, kind: str) -> None:
    assert error_type(status) == kind
    body = error_object(SparksError(status, "code", "msg"))
    assert body == {"type": "error", "error": {"type": kind, "message": "msg"}}


def test_estimate_counts_characters_over_four_and_images_flat() -> None:
    text = "x" * 400
    small = estimate_tokens(chat_of(messages=[{"role": "user", "content": text}]))
    assert 100 <= small <= 130
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "Q" * 100000},
    }
    with_image = estimate_tokens(chat_of(messages=[{"role": "user", "content": [image]}]))
    assert 1600 <= with_image < 1700
    tools = [
        {"name": "w", "input_schema": {"type": "object", "properties": {"c": {"type": "string"}}}}
    ]
    assert (
        estimate_tokens(chat_of(messages=[{"role": "user", "content": text}], tools=tools)) > small
    )
