"""The system prompt a ghost's model sees before the client's conversation."""

from __future__ import annotations

from sparks.ghosts.definitions import GhostSpec

WRITE_RULES = (
    "- Read a file before you edit it. edit_file replaces one exact, unique piece of text; "
    "include enough surrounding lines to make it unique.\n"
    "- write_file replaces a whole file; use it for new files.\n"
)
READ_ONLY_RULES = (
    "- You are read-only: you cannot change files; shell runs in a read-only jail of the "
    "workspace.\n"
)


def system_prompt(
    spec: GhostSpec, tool_names: tuple[str, ...], client_tools: tuple[str, ...] = ()
) -> str:
    parts = []
    if spec.soul.strip():
        parts.append(spec.soul.strip())
    parts.append(f"You are the Sparks ghost '{spec.name}': {spec.description}".rstrip())
    parts.append(
        f"Workspace: {spec.workspace}\n"
        "All paths are relative to the workspace; anything outside it, and secret files "
        "(.env, keys, credentials), are refused."
    )
    rules = (
        f"Tools: {', '.join(tool_names)}.\n"
        "- Use tools to ground every claim in files you actually read; cite paths.\n"
        "- Tool errors come back as tool results: read them and adapt; do not repeat a call "
        "that failed the same way.\n"
    )
    rules += READ_ONLY_RULES if spec.read_only else WRITE_RULES
    rules += "- When you are done, answer the user directly without calling more tools."
    parts.append(rules)
    if client_tools:
        parts.append(
            f"The user's own application also offers tools: {', '.join(client_tools)}. They run "
            "on the user's side, not in your workspace: calling one ends your turn, and its "
            "result comes back in the user's next message. Prefer your own tools for reading "
            "and changing the workspace; use the application's tools when the task needs them."
        )
    return "\n\n".join(parts)
