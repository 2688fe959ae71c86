"""`sparks doctor`: one line per check, each a fact about this machine and config."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from sparks import keys
from sparks.backends.catalog import Catalog
from sparks.backends.detect import apply_detected, detect_backends
from sparks.backends.upstream import Upstreams
from sparks.config import Config, ignored_cwd_config
from sparks.errors import ConfigError, SparksError
from sparks.security import is_loopback_host


@dataclass
class Check:
    check: str
    ok: bool
    detail: str
    warn_only: bool = False


def _port_free(host: str, port: int) -> tuple[bool, str]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return False, f"{host}:{port} unavailable: {exc.strerror}"
    return True, f"{host}:{port} is free"


async def run_checks(config: Config, path: Path | None) -> list[Check]:
    checks = [Check("config", True, str(path) if path else "no file; built-in defaults")]
    if path is None and (ignored := ignored_cwd_config()):
        checks.append(Check("config (cwd)", False, ignored, warn_only=True))
    try:
        found = keys.find_main_key(config)
        checks.append(
            Check("key", True, found.source)
            if found
            else Check("key", True, "none yet; `sparks serve` generates one", warn_only=True)
        )
    except PermissionError as exc:
        checks.append(Check("key", False, str(exc)))
    usable = keys.keyring_usable()
    checks.append(
        Check(
            "keyring",
            usable,
            keys.keyring_backend_name() + ("" if usable else " (not usable; key file fallback)"),
            warn_only=not usable,
        )
    )
    api = config.openai_api
    loopback = is_loopback_host(api.host)
    checks.append(
        Check(
            "bind",
            loopback,
            f"{api.bind}" + ("" if loopback else " is not loopback (needs --allow-nonlocal)"),
            warn_only=not loopback,
        )
    )
    free, detail = _port_free(api.host, api.port)
    checks.append(Check("port", free, detail + ("" if free else " (is sparks already running?)")))
    if not config.backends:
        config = apply_detected(config, await detect_backends())
        checks.append(
            Check(
                "backends",
                bool(config.backends),
                "detected: " + (", ".join(config.backends) or "none"),
            )
        )
    catalog = Catalog(config)
    async with Upstreams.new_session() as session:
        upstreams = Upstreams(config.backends, session)
        await catalog.refresh(upstreams)
    for name, backend in config.backends.items():
        status = keys.backend_key_status(backend)
        error = catalog.discovery_errors.get(name)
        models = catalog.models.get(name, ())
        if error:
            checks.append(Check(f"backend {name}", False, f"{backend.base_url}: {error}"))
        else:
            checks.append(
                Check(
                    f"backend {name}",
                    status != "missing",
                    f"{backend.base_url}: {len(models)} models, key {status}",
                )
            )
    for problem in catalog.table.problems:
        checks.append(Check("aliases", False, problem))
    checks.extend(_ghost_checks(config, catalog))
    return checks


def _ghost_checks(config: Config, catalog: Catalog) -> list[Check]:
    from sparks.ghosts.definitions import ghost_specs
    from sparks.ghosts.tools import shell_unavailable_reason, unjailed_shell_warning
    from sparks.observe.observer import events_path

    checks = []
    try:
        specs = ghost_specs(config, protected=[events_path(config.observer)])
    except ConfigError as exc:
        return [Check("ghosts", False, str(exc))]
    for spec in specs:
        model = spec.model or catalog.first_model(local_only=False)
        if not model:
            ok, detail = False, "no model: configure a backend or ghost_defaults.model"
        else:
            try:
                route = catalog.table.resolve(model)
                ok = route.kind in ("backend", "alias") and bool(route.chain)
                detail = f"model {model} → {route.label}"
            except SparksError as exc:
                ok, detail = False, f"model {model}: {exc.message}"
        unavailable = shell_unavailable_reason(spec)
        unjailed = unjailed_shell_warning(spec)
        if unavailable:
            detail += (
                f"; workspace {spec.workspace}; sandbox {spec.sandbox}: no shell: {unavailable}"
            )
        elif unjailed:
            detail += f"; workspace {spec.workspace}; sandbox none: {unjailed}"
        elif "shell" in spec.tools:
            detail += f"; workspace {spec.workspace}; sandbox {spec.sandbox}: shell in the bubblewrap jail"
        else:
            detail += f"; workspace {spec.workspace}; sandbox {spec.sandbox}: no shell configured"
        checks.append(Check(f"ghost {spec.name}", ok, detail))
    return checks
