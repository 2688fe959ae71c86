#!/usr/bin/env bash
# Install the real clients tests/test_real_clients.py drives against `sparks serve`. Idempotent:
# a tool already at its pinned version is left alone.
#
#   tests/clients/node/node_modules    the official `openai` npm client (npm ci, lockfile)
#   $SPARKS_TEST_TOOLS/opencode        OpenCode (npm package opencode-ai; ships its binary)
#   $SPARKS_TEST_TOOLS/aider           Aider in its own venv (never the project's .venv)
#
# SPARKS_TEST_TOOLS defaults to ~/.cache/sparks-test-tools; the tests look there too.
set -euo pipefail
cd "$(dirname "$0")"

OPENCODE_VERSION=1.18.33
AIDER_VERSION=0.86.2
TOOLS="${SPARKS_TEST_TOOLS:-$HOME/.cache/sparks-test-tools}"
mkdir -p "$TOOLS"

say() { echo "clients: $*" >&2; }

if ! command -v npm >/dev/null 2>&1; then
  if [ "${CI:-}" = "true" ]; then
    say "npm not found, and CI=true requires the node client and OpenCode"
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
fi

aider="$TOOLS/aider/bin/aider"
if ! "$TOOLS/aider/bin/python" -c \
  "import importlib.metadata as m, sys; sys.exit(m.version('aider-chat') != '$AIDER_VERSION')" \
  2>/dev/null; then
  say "aider-chat==$AIDER_VERSION → $TOOLS/aider"
  rm -rf "$TOOLS/aider"
  python3 -m venv "$TOOLS/aider"
  "$TOOLS/aider/bin/pip" install -q --disable-pip-version-check "aider-chat==$AIDER_VERSION"
fi
"$aider" --version >/dev/null

say "done"
