"""The route table (SPEC §4.1, §4.4), pure: config plus model lists in, routes or errors out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from sparks.config import parse_config
from sparks.errors import SparksError
from sparks.routing import Route, RouteTable, Target

LOCAL = "http://127.0.0.1:11434/v1"
REMOTE = "https://openrouter.ai/api/v1"


def table(
    models: Mapping[str, Sequence[str]],
    backends: Mapping[str, str] | None = None,
    aliases: Mapping[str, Any] | None = None,
    unknown_model: str = "classify",
) -> RouteTable:
    """A table over `backends` (name → base_url; default: `local` on loopback, `or` remote)."""
    backends = backends or {"local": LOCAL, "or": REMOTE}
    config = parse_config(
        {
            "openai_api": {"unknown_model": unknown_model},
            "backends": {name: {"base_url": url} for name, url in backends.items()},
            "aliases": dict(aliases or {}),
        },
        None,
    )
    return RouteTable(config, models)


def ids(route: Route) -> list[str]:
    return [t.sparks_id for t in route.chain]


def expect_error(t: RouteTable, model: str, status: int, code: str) -> SparksError:
    with pytest.raises(SparksError) as caught:
        t.resolve(model)
    assert (caught.value.status, caught.value.code) == (status, code)
    return caught.value


def test_listed_backend_model_resolves_to_that_backend() -> None:
    route = table({"local": ["qwen3:8b"]}).resolve("local/qwen3:8b")
    assert route.kind == "backend"
    assert route.chain == (Target("local/qwen3:8b", "local", "qwen3:8b", local=True),)
    assert route.label == "backend:local/qwen3:8b"


def test_sparks_alone_means_classify() -> None:
    route = table({}).resolve("sparks")
    assert (route.kind, route.chain, route.label) == ("classify", (), "classify")


def test_ghost_id_resolves_to_the_ghost() -> None:
    route = table({}).resolve("sparks/scout")
    assert route.kind == "ghost"
    assert route.chain == (Target("sparks/scout", ghost="scout"),)
    assert route.label == "ghost:scout"


def test_unknown_ghost_is_404_naming_the_known_ghosts() -> None:
    error = expect_error(table({}), "sparks/nope", 404, "model_not_found")
    assert error.param == "model"
    assert "sparks/coder" in error.message and "sparks/scout" in error.message


def test_unknown_ghost_is_404_even_under_classify_policy() -> None:
    expect_error(table({}, unknown_model="classify"), "sparks/nope", 404, "model_not_found")


def test_unlisted_model_on_a_configured_backend_goes_to_that_backend() -> None:
    route = table({"local": []}).resolve("local/not-listed")
    assert route.chain == (Target("local/not-listed", "local", "not-listed", local=True),)


def test_model_with_slashes_keeps_everything_after_the_first_slash() -> None:
    route = table({"or": []}).resolve("or/google/gemini-2.5-flash")
    assert route.chain[0].backend == "or"
    assert route.chain[0].upstream_model == "google/gemini-2.5-flash"
    assert route.chain[0].sparks_id == "or/google/gemini-2.5-flash"
    assert route.chain[0].local is False


def test_listed_model_with_slashes_is_also_reachable_by_its_bare_id() -> None:
    t = table({"or": ["google/gemini-2.5-flash"]})
    assert ids(t.resolve("or/google/gemini-2.5-flash")) == ["or/google/gemini-2.5-flash"]
    assert ids(t.resolve("google/gemini-2.5-flash")) == ["or/google/gemini-2.5-flash"]


def test_bare_id_served_by_one_backend_goes_there() -> None:
    route = table({"local": ["qwen3:8b"], "or": ["gpt-4o"]}).resolve("gpt-4o")
    assert route.kind == "backend"
    assert ids(route) == ["or/gpt-4o"]


def test_ambiguous_bare_id_is_classified_under_classify_policy() -> None:
    t = table({"local": ["same"], "or": ["same"]})
    assert t.resolve("same").kind == "classify"


def test_ambiguous_bare_id_is_404_naming_each_backend_under_reject_policy() -> None:
    t = table({"local": ["same"], "or": ["same"]}, unknown_model="reject")
    error = expect_error(t, "same", 404, "model_not_found")
    assert "local/same" in error.message and "or/same" in error.message


def test_unknown_id_is_classified_under_classify_policy() -> None:
    route = table({"local": ["a"]}).resolve("nobody/knows")
    assert route.kind == "classify" and route.model == "nobody/knows"


def test_unknown_id_is_404_under_reject_policy() -> None:
    expect_error(table({}, unknown_model="reject"), "nobody/knows", 404, "model_not_found")


def test_backend_prefix_beats_a_bare_id_with_the_same_text() -> None:
    """SPEC §4.1 rule 4 before rule 5: `openai/gpt-4o` names the configured backend `openai`,
    even when another backend (OpenRouter) lists a model whose bare id is `openai/gpt-4o`."""
    t = table(
        {"openai": [], "or": ["openai/gpt-4o"]},
        backends={"openai": "https://api.openai.com/v1", "or": REMOTE},
    )
    assert ids(t.resolve("openai/gpt-4o")) == ["openai/gpt-4o"]


def test_models_of_unconfigured_backends_are_ignored() -> None:
    t = table({"gone": ["m"]}, unknown_model="reject")
    expect_error(t, "gone/m", 404, "model_not_found")
    expect_error(t, "m", 404, "model_not_found")


def test_alias_resolves_to_its_chain_in_order() -> None:
    t = table({"local": ["a"], "or": ["b"]}, aliases={"fast": ["or/b", "local/a"]})
    route = t.resolve("fast")
    assert (route.kind, route.alias, route.label) == ("alias", "fast", "alias:fast")
    assert ids(route) == ["or/b", "local/a"]


def test_alias_given_as_a_string_is_a_chain_of_one() -> None:
    assert ids(table({"local": ["a"]}, aliases={"one": "local/a"}).resolve("one")) == ["local/a"]


def test_alias_entries_may_be_ghosts_bare_ids_and_unlisted_backend_models() -> None:
    t = table({"local": ["a"]}, aliases={"mix": ["sparks/scout", "a", "or/anything/x"]})
    chain = t.resolve("mix").chain
    assert [t.sparks_id for t in chain] == ["sparks/scout", "local/a", "or/anything/x"]
    assert chain[0].ghost == "scout" and chain[0].kind == "ghost"
    assert chain[2].upstream_model == "anything/x"


def test_nested_aliases_flatten_in_order_without_duplicates() -> None:
    t = table(
        {"local": ["a", "b"], "or": ["c"]},
        aliases={
            "outer": ["inner", "or/c", "local/a"],
            "inner": ["local/a", "deeper"],
            "deeper": ["sparks/coder", "local/b"],
        },
    )
    assert ids(t.resolve("outer")) == ["local/a", "sparks/coder", "local/b", "or/c"]
    assert ids(t.resolve("inner")) == ["local/a", "sparks/coder", "local/b"]
    assert t.problems == []


def test_alias_entry_nobody_serves_is_reported_and_left_out() -> None:
    t = table({"local": ["a"]}, aliases={"fast": ["ghost-of-nothing", "local/a"]})
    assert ids(t.resolve("fast")) == ["local/a"]
    assert len(t.problems) == 1
    assert "aliases.fast" in t.problems[0] and "'ghost-of-nothing'" in t.problems[0]


def test_alias_may_not_point_at_the_classifier() -> None:
    t = table({}, aliases={"auto": ["sparks"]})
    assert t.resolve("auto").chain == ()
    assert t.problems and "'sparks'" in t.problems[0]


def test_local_suffix_keeps_a_loopback_backend_model() -> None:
    route = table({"local": ["a"]}).resolve("local/a:local")
    assert route.local_only is True
    assert ids(route) == ["local/a"]


def test_local_suffix_on_a_remote_model_is_503_no_local_backend() -> None:
    error = expect_error(table({"or": ["b"]}), "or/b:local", 503, "no_local_backend")
    assert error.param == "model" and "or/b:local" in error.message


def test_local_suffix_drops_remote_entries_of_an_alias_and_keeps_ghosts() -> None:
    t = table({"local": ["a"], "or": ["b"]}, aliases={"mix": ["or/b", "sparks/scout", "local/a"]})
    route = t.resolve("mix:local")
    assert ids(route) == ["sparks/scout", "local/a"]
    assert route.local_only and route.kind == "alias"


def test_local_suffix_on_an_all_remote_alias_is_503() -> None:
    t = table({"or": ["b", "c"]}, aliases={"cloud": ["or/b", "or/c"]})
    expect_error(t, "cloud:local", 503, "no_local_backend")


def test_local_suffix_on_classify_marks_the_route_local_only() -> None:
    t = table({})
    assert t.resolve("sparks:local") == Route("sparks", "classify", local_only=True)
    unknown = t.resolve("nobody:local")
    assert unknown.kind == "classify" and unknown.local_only


def test_local_suffix_on_a_ghost_keeps_the_ghost() -> None:
    route = table({}).resolve("sparks/scout:local")
    assert route.kind == "ghost" and route.local_only


def test_local_suffix_on_an_unknown_id_under_reject_is_404() -> None:
    expect_error(table({}, unknown_model="reject"), "nobody:local", 404, "model_not_found")


def test_bare_local_suffix_is_an_ordinary_unknown_id() -> None:
    route = table({}).resolve(":local")
    assert route.kind == "classify" and not route.local_only


def test_ipv6_and_localhost_backends_count_as_local() -> None:
    t = table(
        {"v6": ["a"], "name": ["b"]},
        backends={"v6": "http://[::1]:8000/v1", "name": "http://localhost:1234/v1"},
    )
    assert t.local_backends == frozenset({"v6", "name"})
    assert ids(t.resolve("a:local")) == ["v6/a"]
