"""A request's own `tools` on a ghost (SPEC §5.1): what the model is offered besides the ghost's
tools, and how `tool_choice` and `parallel_tool_calls` apply to the merged set. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sparks.errors import SparksError, invalid_value

RESERVED_NOTE = "client tool not offered: the ghost's own tool has this name"
NOT_FUNCTION_NOTE = "client tool not offered: only function tools can be merged"
CHOICE_WORDS = ("none", "auto", "required")


@dataclass
class ToolOffer:
    """What each model call of one ghost request gets."""

    tools: list[dict[str, Any]]  # the ghost's tools, then the client's it may call
    client_names: frozenset[str] = frozenset()
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, why not offered)
    tool_choice: Any = "auto"  # for the first model call; later calls use `later_choice`
    later_choice: Any = "auto"
    parallel_tool_calls: bool | None = None

    def fields(self, first_call: bool) -> dict[str, Any]:
        """The tool fields of one model call's body."""
        body: dict[str, Any] = {
            "tools": self.tools,
            "tool_choice": self.tool_choice if first_call else self.later_choice,
        }
        if self.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = self.parallel_tool_calls
        return body


def offer_tools(
    policy: str, ghost_name: str, ghost_tools: list[dict[str, Any]], body: dict[str, Any]
) -> ToolOffer:
    """The offer for a request under `policy` (merge | ignore | reject); 400 for bad input.

    A forcing `tool_choice` ("required" or a named function) applies to the first model call
    only, so the loop can still end; "none" applies to every call."""
    sent = body.get("tools")
    if policy == "ignore" or (not sent and "tool_choice" not in body):
        return ToolOffer(list(ghost_tools))
    if policy == "reject" and sent:
        raise SparksError(
            400,
            "unsupported_option",
            f"'tools' cannot be sent to the ghost {ghost_name} (client_tools = \"reject\"): it "
            "brings its own tools; call a backend model to use yours",
            param="tools",
        )
    reserved = {t["function"]["name"] for t in ghost_tools}
    offer = ToolOffer(list(ghost_tools))
    names: list[str] = []
    if sent is not None and not isinstance(sent, list):
        raise invalid_value("tools", "'tools' must be an array of tool objects")
    for index, tool in enumerate(sent or []):
        function = tool.get("function") if isinstance(tool, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            offer.skipped.append(
                (str(tool.get("type") if isinstance(tool, dict) else tool), NOT_FUNCTION_NOTE)
            )
            continue
        if not isinstance(name, str) or not name:
            raise invalid_value("tools", f"tools[{index}].function.name must be a non-empty string")
        if name in reserved:
            offer.skipped.append((name, RESERVED_NOTE))
            continue
        if name not in names:
            names.append(name)
            offer.tools.append({**tool, "type": "function"})
    offer.client_names = frozenset(names)
    offer.tool_choice, offer.later_choice = _choices(body.get("tool_choice", "auto"), offer)
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise invalid_value("parallel_tool_calls", "'parallel_tool_calls' must be true or false")
    offer.parallel_tool_calls = parallel
    return offer


def _choices(choice: Any, offer: ToolOffer) -> tuple[Any, Any]:
    if choice in CHOICE_WORDS:
        return choice, "none" if choice == "none" else "auto"
    name = None
    if isinstance(choice, dict) and choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str):
        raise invalid_value(
            "tool_choice",
            '\'tool_choice\' must be "none", "auto", "required" or '
            '{"type": "function", "function": {"name": …}}',
        )
    offered = [t["function"]["name"] for t in offer.tools]
    if name not in offered:
        raise invalid_value(
            "tool_choice", f"tool_choice names {name!r}, which is not offered: {', '.join(offered)}"
        )
    return {"type": "function", "function": {"name": name}}, "auto"
