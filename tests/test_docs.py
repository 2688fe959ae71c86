"""Docs that stay true (STYLE.md): documented config defaults are the code's defaults, documented
limits are the code's constants, and every file or package the docs name exists."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from sparks import jsonfast
from sparks.config import Config, parse_config

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CONFIG_DOC = DOCS / "configuration.md"
TABLE_HEADER = "| key | type | default | meaning |"

# dataclass fields that are not keys of their TOML table (the table name; a sub-table)
NOT_KEYS = {"[backends.NAME]": {"name", "model_info"}, "[observer]": {"otlp"}}


def _defaults() -> dict[str, Any]:
    """Each documented TOML table → the object the parser builds when no key is given."""
    config: Config = parse_config(
        {
            "backends": {"b": {"base_url": "http://127.0.0.1:1/v1", "model_info": {"m": {}}}},
            "ghosts": [{"name": "extra"}],
        },
        None,
    )
    backend = config.backends["b"]
    return {
        "[openai_api]": config.openai_api,
        "[observer]": config.observer,
        "[observer.otlp]": config.observer.otlp,
        "[backends.NAME]": backend,
        '[backends.NAME.model_info."MODEL"]': backend.model_info["m"],
        "[classifier]": config.classifier,
        "[ghost_defaults]": config.ghost_defaults,
        "[[ghosts]]": config.ghosts[-1],
    }


def _cells(row: str) -> list[str]:
    """Split a markdown table row on `|` outside backticks (and not escaped)."""
    cells, current, in_code = [], "", False
    previous = ""
    for char in row.strip().strip("|"):
        if char == "`":
            in_code = not in_code
        if char == "|" and not in_code and previous != "\\":
            cells.append(current.strip())
            current = ""
        else:
            current += char
        previous = char
    cells.append(current.strip())
    return cells


def documented_keys() -> dict[str, dict[str, str]]:
    """TOML table (from the section heading) → {key: default cell} for every key table."""
    tables: dict[str, dict[str, str]] = {}
    heading = ""
    lines = CONFIG_DOC.read_text().splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("#"):
            found = re.search(r"`(\[\[?[^`]+\]\]?)`", line)
            heading = found.group(1) if found else ""
        if line.strip() == TABLE_HEADER:
            assert heading, (
                f"configuration.md line {index + 1}: key table without a [table] heading"
            )
            rows = tables.setdefault(heading, {})
            index += 2  # header and separator
            while index < len(lines) and lines[index].startswith("|"):
                cells = _cells(lines[index])
                rows[cells[0].strip("`")] = cells[2]
                index += 1
            continue
        index += 1
    return tables


def expected_cell_value(cell: str) -> Any:
    """A default cell → the Python value it documents (`unset` → None)."""
    if cell == "unset":
        return None
    found = re.match(r"`([^`]*)`", cell)
    if not found:
        raise ValueError(f"default {cell!r} is not `TOML`, `required` or `unset`")
    value = tomllib.loads(f"v = {found.group(1)}")["v"]
    return tuple(value) if isinstance(value, list) else value


def test_every_config_table_is_documented_with_its_keys() -> None:
    tables = documented_keys()
    assert set(tables) == set(_defaults())
    for table, obj in _defaults().items():
        fields = {f.name for f in dataclasses.fields(obj)} - NOT_KEYS.get(table, set())
        assert set(tables[table]) == fields, f"{table}: docs and sparks/config.py differ"


@pytest.mark.parametrize(
    ("table", "key"),
    [(table, key) for table, rows in documented_keys().items() for key in rows],
)
def test_documented_default_is_the_code_default(table: str, key: str) -> None:
    cell = documented_keys()[table][key]
    obj = _defaults()[table]
    field = next(f for f in dataclasses.fields(obj) if f.name == key)
    if cell == "required":
        assert field.default is dataclasses.MISSING
        assert field.default_factory is dataclasses.MISSING
        return
    documented = expected_cell_value(cell)
    actual = getattr(obj, key)
    assert documented == actual, f"{table} {key}: docs say {cell}, the code uses {actual!r}"
    assert type(documented) is type(actual), f"{table} {key}: {cell} is not a {type(actual)}"


def test_documented_json_depth_limit_is_the_code_limit() -> None:
    api = (DOCS / "api.md").read_text()
    assert f"nested deeper than {jsonfast.MAX_DEPTH} levels" in api
    assert f"deeper than **{jsonfast.MAX_DEPTH}** levels" in api


PATH_MENTION = re.compile(
    r"(?<![\w./~$%-])((?:sparks|tests|scripts)/[\w/]*\w\.py|sparks/[a-z_]+/(?=[`\s|),]))"
)


def test_every_file_the_docs_name_exists() -> None:
    missing = []
    for doc in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        for mention in PATH_MENTION.findall(doc.read_text()):
            if not (ROOT / mention).exists():
                missing.append(f"{doc.name}: {mention}")
    assert not missing, f"docs name files that do not exist: {missing}"


def test_architecture_names_every_package() -> None:
    text = (DOCS / "architecture.md").read_text()
    packages = sorted(p.parent.name for p in (ROOT / "sparks").glob("*/__init__.py"))
    assert packages
    missing = [p for p in packages if f"`sparks/{p}/`" not in text]
    assert not missing, f"docs/architecture.md does not describe: {missing}"
