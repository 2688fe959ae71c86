"""Pure translators between other APIs and the chat-completions shape the pipeline serves
(SPEC §9): request items → chat messages, chat answers and chunks → that API's objects and
stream events. No I/O and no aiohttp here, so every rule is table-tested without a server."""
