"""From a resolved route to a Plan: which ghost answers, or which backend chain is tried.

The router (`sparks.routing`) maps a model id to a Route; this step applies what the request
is (only chat reaches ghosts) and yields what `route.resolved` records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sparks.errors import SparksError, model_not_found
from sparks.ghosts.classifier import Decision
from sparks.ghosts.definitions import GhostSpec
from sparks.routing import CLASSIFY_ID, LOCAL_SUFFIX, Route, Target


@dataclass(frozen=True)
class Plan:
    route: Route
    chain: tuple[Target, ...]  # backend targets: the chain itself, or the ghost's model chain
    ghost: GhostSpec | None = None
    decision: Decision | None = None

    def event_fields(self) -> dict[str, Any]:
        """The `route.resolved` event's fields (SPEC §8)."""
        if self.ghost is not None:
            decision = self.decision
            return {
                "model": self.route.model,
                "kind": "ghost" if decision is None else "classify",
                "target": self.ghost.sparks_id,
                "chain": [t.sparks_id for t in self.chain],
                "ghost": self.ghost.name,
                "classifier": None
                if decision is None
                else {
                    "method": decision.method,
                    "latency_ms": decision.latency_ms,
                    "note": decision.note or None,
                },
            }
        return {
            "model": self.route.model,
            "kind": self.route.kind,
            "target": self.chain[0].sparks_id if self.chain else None,
            "chain": [t.sparks_id for t in self.chain] if self.route.kind == "alias" else None,
            "ghost": None,
            "classifier": None,
        }


def wants_ghost(route: Route) -> bool:
    return route.kind in ("classify", "ghost") or bool(route.chain and route.chain[0].ghost)


def backend_plan(route: Route, ghosts_allowed: bool) -> Plan:
    """A plan over the route's backend targets; refuses ghosts where they cannot answer."""
    if not ghosts_allowed and wants_ghost(route):
        base = route.model.removesuffix(LOCAL_SUFFIX)
        if route.kind == "classify" and base != CLASSIFY_ID:
            raise model_not_found(route.model)  # unknown ids only mean "a ghost" on chat
        raise SparksError(
            400,
            "unsupported_for_ghost",
            f"'{route.model}' is a ghost; ghosts only answer chat requests",
            param="model",
        )
    chain = tuple(t for t in route.chain if t.backend)
    if not chain:
        raise SparksError(503, "no_backend", f"No backend can serve '{route.model}'", param="model")
    return Plan(route, chain)
