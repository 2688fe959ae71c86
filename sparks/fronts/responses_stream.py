"""Chat completion chunks → the Responses API streaming events (SPEC §9.1). Pure: no I/O.

The documented order, one item after another, every event numbered by `sequence_number`:

    response.created, response.in_progress
    reasoning: output_item.added, reasoning_summary_part.added,
               reasoning_summary_text.delta…, reasoning_summary_text.done,
               reasoning_summary_part.done, output_item.done
    message:   output_item.added, content_part.added, output_text.delta…,
               output_text.done, content_part.done, output_item.done
    each tool call: output_item.added, function_call_arguments.delta…,
               function_call_arguments.done, output_item.done
    response.completed (response.incomplete when the model hit its token limit)

A new item closes the one before it; a failure after the start is one `response.failed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sparks.fronts.responses import ResponsesRequest, new_id
from sparks.fronts.responses_output import (
    function_call_item,
    message_item,
    output_text_part,
    reasoning_item,
    response_object,
    responses_usage,
)

Event = dict[str, Any]


@dataclass
class _Item:
    kind: str  # reasoning | message | function_call
    id: str
    index: int  # output_index
    text: list[str] = field(default_factory=list)  # reasoning, text or arguments so far
    call_id: str = ""
    name: str = ""
    done: bool = False

    @property
    def joined(self) -> str:
        return "".join(self.text)

    def final(self) -> dict[str, Any]:
        if self.kind == "reasoning":
            return reasoning_item(self.joined, self.id)
        if self.kind == "message":
            return message_item(self.joined, self.id)
        return function_call_item(self.call_id, self.name, self.joined, self.id)


class ResponseStream:
    """Feed it chat chunks in order; each call returns the Responses events they make."""

    def __init__(self, request: ResponsesRequest, model: str) -> None:
        self.request = request
        self.model = model
        self.sequence = 0
        self.items: list[_Item] = []
        self.current: _Item | None = None  # the open reasoning or message item
        self.calls: dict[int, _Item] = {}  # chat tool-call index → its item
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.response: dict[str, Any] | None = None  # the final object, once ended

    def _event(self, kind: str, **fields: Any) -> Event:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event

    def snapshot(self, status: str, error: dict[str, Any] | None = None) -> dict[str, Any]:
        output = [item.final() for item in self.items if item.done or status != "in_progress"]
        return response_object(
            self.request, self.model, output, status=status, usage=self.usage, error=error
        )

    def start(self) -> list[Event]:
        return [
            self._event("response.created", response=self.snapshot("in_progress")),
            self._event("response.in_progress", response=self.snapshot("in_progress")),
        ]

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        if isinstance(chunk.get("usage"), dict):
            self.usage = responses_usage(chunk["usage"])
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue  # the Responses API has one output; n > 1 has no place in it
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning:
                events += self._text("reasoning", reasoning)
            content = delta.get("content")
            if isinstance(content, str) and content:
                events += self._text("message", content)
            for call in delta.get("tool_calls") or ():
                events += self._tool_call(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return events

    def _open(self, kind: str, prefix: str) -> tuple[_Item, list[Event]]:
        events = self._close_all()
        item = _Item(kind, new_id(prefix), len(self.items))
        self.items.append(item)
        return item, events

    def _text(self, kind: str, text: str) -> list[Event]:
        events: list[Event] = []
        item = self.current
        if item is None or item.kind != kind:
            item, events = self._open(kind, "rs" if kind == "reasoning" else "msg")
            self.current = item
            where = {"item_id": item.id, "output_index": item.index}
            if kind == "reasoning":
                events.append(
                    self._event("response.output_item.added", output_index=item.index,
                                item=reasoning_item("", item.id))
                )  # fmt: skip
                events.append(
                    self._event("response.reasoning_summary_part.added", **where, summary_index=0,
                                part={"type": "summary_text", "text": ""})
                )  # fmt: skip
            else:
                events.append(
                    self._event("response.output_item.added", output_index=item.index,
                                item=message_item("", item.id, status="in_progress"))
                )  # fmt: skip
                events.append(
                    self._event("response.content_part.added", **where, content_index=0,
                                part=output_text_part(""))
                )  # fmt: skip
        item.text.append(text)
        where = {"item_id": item.id, "output_index": item.index}
        if kind == "reasoning":
            events.append(
                self._event("response.reasoning_summary_text.delta", **where, summary_index=0,
                            delta=text)
            )  # fmt: skip
        else:
            events.append(
                self._event("response.output_text.delta", **where, content_index=0, delta=text,
                            logprobs=[])
            )  # fmt: skip
        return events

    def _tool_call(self, call: Any) -> list[Event]:
        if not isinstance(call, dict):
            return []
        events: list[Event] = []
        index = call.get("index", len(self.calls))
        function = call.get("function") or {}
        item = self.calls.get(index)
        if item is None:
            item, events = self._open("function_call", "fc")
            item.call_id = call.get("id") or new_id("call")
            item.name = function.get("name") or ""
            self.calls[index] = item
            added = function_call_item(item.call_id, item.name, "", item.id, "in_progress")
            events.append(
                self._event("response.output_item.added", output_index=item.index, item=added)
            )
        elif not item.name and function.get("name"):
            item.name = function["name"]
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            item.text.append(arguments)
            if not item.done:  # a late fragment of an earlier call only reaches the final object
                events.append(
                    self._event("response.function_call_arguments.delta", item_id=item.id,
                                output_index=item.index, delta=arguments)
                )  # fmt: skip
        return events

    def _close_all(self) -> list[Event]:
        events: list[Event] = []
        for item in self.items:
            if not item.done:
                events += self._close(item)
        self.current = None
        return events

    def _close(self, item: _Item) -> list[Event]:
        item.done = True
        where = {"item_id": item.id, "output_index": item.index}
        text = item.joined
        if item.kind == "reasoning":
            part = {"type": "summary_text", "text": text}
            events = [
                self._event("response.reasoning_summary_text.done", **where, summary_index=0,
                            text=text),
                self._event("response.reasoning_summary_part.done", **where, summary_index=0,
                            part=part),
            ]  # fmt: skip
        elif item.kind == "message":
            events = [
                self._event("response.output_text.done", **where, content_index=0, text=text,
                            logprobs=[]),
                self._event("response.content_part.done", **where, content_index=0,
                            part=output_text_part(text)),
            ]  # fmt: skip
        else:
            events = [
                self._event("response.function_call_arguments.done", **where, name=item.name,
                            arguments=text)
            ]  # fmt: skip
        events.append(
            self._event("response.output_item.done", output_index=item.index, item=item.final())
        )
        return events

    def finish(self) -> list[Event]:
        """The chat stream ended whole: close what is open, then the terminal event."""
        events = self._close_all()
        status = "incomplete" if self.finish_reason == "length" else "completed"
        self.response = self.snapshot(status)
        events.append(self._event(f"response.{status}", response=self.response))
        return events

    def failure(self, code: str, message: str) -> list[Event]:
        """A failure after the start: the items so far and `response.failed`."""
        self.response = self.snapshot("failed", {"code": code, "message": message})
        return [self._event("response.failed", response=self.response)]
