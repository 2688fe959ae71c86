#!/usr/bin/env bash
# Install the real clients tests/test_real_clients.py drives against `sparks serve`. Idempotent:
# a tool already at its pinned version is left alone.
#
#   tests/clients/node/node_modules    the official `openai` npm client (npm ci, lockfile)
#   $SPARKS_TEST_TOOLS/opencode        OpenCode (npm package opencode-ai; ships its binary)
#   $SPARKS_TEST_TOOLS/codex           Codex CLI (npm package @openai/codex; ships its binary)
#   $SPARKS_TEST_TOOLS/claude-code     Claude Code (npm package @anthropic-ai/claude-code; its binary)
#   $SPARKS_TEST_TOOLS/aider           Aider in its own venv (never the project's .venv)
#   $SPARKS_TEST_TOOLS/continue        Continue's CLI `cn` (npm package @continuedev/cli)
#   $SPARKS_TEST_TOOLS/llm             Simon Willison's `llm` in its own venv
#
# SPARKS_TEST_TOOLS defaults to ~/.cache/sparks-test-tools; the tests look there too.
set -euo pipefail
cd "$(dirname "$0")"

OPENCODE_VERSION=1.18.33
AIDER_VERSION=0.86.2
CODEX_VERSION=0.171.0
CLAUDE_CODE_VERSION=2.1.197
CONTINUE_VERSION=1.5.47
LLM_VERSION=0.36
TOOLS="${SPARKS_TEST_TOOLS:-$HOME/.cache/sparks-test-tools}"
mkdir -p "$TOOLS"

say() { echo "clients: $*" >&2; }

if ! command -v npm >/dev/null 2>&1; then
  if [ "${CI:-}" = "true" ]; then
    say "npm not found, and CI=true requires the node client, OpenCode and Codex"
    exit 1
  fi
  say "npm not found; skipping the node client and OpenCode (their tests will skip)"
else
  say "openai npm client → tests/clients/node"
  (cd node && npm ci --no-audit --no-fund --loglevel=error)

  opencode="$TOOLS/opencode/node_modules/.bin/opencode"
  if [ "$("$opencode" --version 2>/dev/null || true)" != "$OPENCODE_VERSION" ]; then
    say "opencode-ai@$OPENCODE_VERSION → $TOOLS/opencode"
    rm -rf "$TOOLS/opencode"
    mkdir -p "$TOOLS/opencode"
    npm install --prefix "$TOOLS/opencode" --no-audit --no-fund --loglevel=error \
      "opencode-ai@$OPENCODE_VERSION"
  fi
  "$opencode" --version >/dev/null

  codex="$TOOLS/codex/node_modules/.bin/codex"
  if [ "$("$codex" --version 2>/dev/null || true)" != "codex-cli $CODEX_VERSION" ]; then
    say "@openai/codex@$CODEX_VERSION → $TOOLS/codex"
    rm -rf "$TOOLS/codex"
    mkdir -p "$TOOLS/codex"
    npm install --prefix "$TOOLS/codex" --no-audit --no-fund --loglevel=error \
      "@openai/codex@$CODEX_VERSION"
  fi
  [ "$("$codex" --version)" = "codex-cli $CODEX_VERSION" ]  # set -e: a bad install fails here

  claude="$TOOLS/claude-code/node_modules/.bin/claude"
  if [ "$("$claude" --version 2>/dev/null || true)" != "$CLAUDE_CODE_VERSION (Claude Code)" ]; then
    say "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION → $TOOLS/claude-code"
    rm -rf "$TOOLS/claude-code"
    mkdir -p "$TOOLS/claude-code"
    npm install --prefix "$TOOLS/claude-code" --no-audit --no-fund --loglevel=error \
      "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION"
  fi
  # set -e: a bad install (e.g. its platform binary missing) fails here, loudly
  [ "$("$claude" --version)" = "$CLAUDE_CODE_VERSION (Claude Code)" ]

  cn="$TOOLS/continue/node_modules/.bin/cn"
  if [ "$(cat "$TOOLS/continue/.version" 2>/dev/null || true)" != "$CONTINUE_VERSION" ] \
    || [ ! -x "$cn" ]; then
    say "@continuedev/cli@$CONTINUE_VERSION → $TOOLS/continue"
    rm -rf "$TOOLS/continue"
    mkdir -p "$TOOLS/continue"
    npm install --prefix "$TOOLS/continue" --no-audit --no-fund --loglevel=error \
      "@continuedev/cli@$CONTINUE_VERSION"
    echo "$CONTINUE_VERSION" > "$TOOLS/continue/.version"
  fi
  "$cn" --version >/dev/null
fi

# Python tools, each in its own venv (never the project's .venv), at its pinned version.
pip_tool() {  # dist version dir
  if ! "$TOOLS/$3/bin/python" -c \
    "import importlib.metadata as m, sys; sys.exit(m.version('$1') != '$2')" 2>/dev/null; then
    say "$1==$2 → $TOOLS/$3"
    rm -rf "${TOOLS:?}/$3"
    python3 -m venv "$TOOLS/$3"
    "$TOOLS/$3/bin/pip" install -q --disable-pip-version-check "$1==$2"
  fi
  "$TOOLS/$3/bin/$3" --version >/dev/null
}
pip_tool aider-chat "$AIDER_VERSION" aider
pip_tool llm "$LLM_VERSION" llm

say "done"
