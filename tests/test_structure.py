"""The house rules of STYLE.md, read from the source with ast: no import circles, imports run
downward (cli → server → pipeline/fronts → backends/ghosts → observe → core), only the pipeline
opens chains and writes terminal events, and no module grows past 400 lines."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPARKS = ROOT / "sparks"
MAX_LINES = 400

# Higher imports lower. One layer may hold several packages; those never import each other.
LAYERS = {
    "cli": 6,
    "server": 5,
    "pipeline": 4,
    "fronts": 4,
    "backends": 3,
    "ghosts": 3,
    "observe": 2,
    "core": 1,  # the top-level modules: config, keys, errors, protocol, limiter, security, …
}
TOP_LEVEL_GROUPS = {"__main__": "cli"}  # `python -m sparks` is the CLI
TERMINAL_WRITES = frozenset({"complete", "fail", "reject"})
# `.fail(` calls that are not a request record's: the config parser's error builder.
NOT_RECORDS: set[tuple[str, str]] = set()  # (module, receiver) pairs whose .fail() is no record
RECORD_MODULE = "sparks/observe/record.py"


@dataclass(frozen=True)
class Module:
    name: str  # sparks.pipeline.serve
    path: Path

    @property
    def rel(self) -> str:
        return self.path.relative_to(ROOT).as_posix()

    @property
    def package(self) -> str:
        """The dotted package the module's relative imports start from."""
        parts = self.name.split(".")
        return self.name if self.path.name == "__init__.py" else ".".join(parts[:-1])


@cache
def modules() -> dict[str, Module]:
    found = {}
    for path in sorted(SPARKS.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = Module(".".join(parts), path)
    return found


@cache
def tree(module: Module) -> ast.Module:
    return ast.parse(module.path.read_text(encoding="utf-8"), filename=module.rel)


def group_of(name: str) -> str:
    """`sparks.pipeline.serve` → `pipeline`; `sparks.config` and `sparks` → `core`."""
    parts = name.split(".")
    if len(parts) == 1:
        return "core"
    if (SPARKS / parts[1]).is_dir():
        return parts[1]
    return TOP_LEVEL_GROUPS.get(parts[1], "core")


def imports(module: Module) -> Iterator[tuple[int, str]]:
    """(line, imported sparks module) for every import, at any depth (lazy ones included)."""
    known = modules()
    for node in ast.walk(tree(module)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "sparks":
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "sparks":
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                yield node.lineno, submodule if submodule in known else source


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {
        name: {target for _, target in imports(module) if target in known and target != name}
        for name, module in known.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_package_has_a_layer() -> None:
    unknown = {group_of(name) for name in modules()} - set(LAYERS)
    assert not unknown, f"add these packages to LAYERS in {Path(__file__).name}: {unknown}"


def test_there_are_no_import_circles() -> None:
    found = cycles(import_graph())
    assert not found, "import circles:\n" + "\n".join(" ⇄ ".join(c) for c in found)


def test_imports_run_downward() -> None:
    """Every import goes to a lower layer, or stays inside its own package."""
    wrong = []
    for name, module in modules().items():
        source = group_of(name)
        for line, target in imports(module):
            destination = group_of(target)
            if destination == source:
                continue
            if LAYERS[destination] >= LAYERS[source]:
                wrong.append(f"{module.rel}:{line} ({source}) imports {target} ({destination})")
    assert not wrong, "imports that run upward or sideways:\n" + "\n".join(wrong)


def test_core_imports_no_package() -> None:
    wrong = [
        f"{module.rel}:{line} imports {target}"
        for name, module in modules().items()
        if group_of(name) == "core"
        for line, target in imports(module)
        if group_of(target) != "core"
    ]
    assert not wrong, "\n".join(wrong)


def calls_named(module: Module, names: frozenset[str]) -> Iterator[tuple[int, str, str]]:
    """(line, method, receiver source) for each `receiver.method(...)` call."""
    for node in ast.walk(tree(module)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in names
        ):
            yield node.lineno, node.func.attr, ast.unparse(node.func.value)


def outside_pipeline() -> Iterator[Module]:
    for module in modules().values():
        if group_of(module.name) != "pipeline":
            yield module


def test_only_the_pipeline_opens_a_chain() -> None:
    wrong = [
        f"{module.rel}:{line} {receiver}.open_chain(...)"
        for module in outside_pipeline()
        for line, _, receiver in calls_named(module, frozenset({"open_chain"}))
    ]
    assert not wrong, "chains opened outside pipeline/:\n" + "\n".join(wrong)


def test_only_the_pipeline_writes_a_terminal_event() -> None:
    """`record.complete/fail/reject` belong to the responder; elsewhere a handler returns or
    raises and the responder decides (`responder.finish` and `.error` are how servers hand off)."""
    wrong = [
        f"{module.rel}:{line} {receiver}.{method}(...)"
        for module in outside_pipeline()
        if module.rel != RECORD_MODULE
        for line, method, receiver in calls_named(module, TERMINAL_WRITES)
        if (module.rel, receiver) not in NOT_RECORDS
    ]
    assert not wrong, "terminal events written outside pipeline/:\n" + "\n".join(wrong)


def test_no_module_is_over_400_lines() -> None:
    sizes = {
        m.rel: len(m.path.read_text(encoding="utf-8").splitlines()) for m in modules().values()
    }
    over = [f"{rel}: {n} lines" for rel, n in sorted(sizes.items()) if n > MAX_LINES]
    assert not over, f"modules over {MAX_LINES} lines (split them):\n" + "\n".join(over)


def test_every_package_says_what_it_owns() -> None:
    silent = [
        module.rel
        for module in modules().values()
        if module.path.name == "__init__.py" and not ast.get_docstring(tree(module))
    ]
    assert not silent, "packages without a docstring saying what they own: " + ", ".join(silent)


def test_the_checker_sees_relative_imports_and_circles() -> None:
    """The rules above would pass vacuously if import resolution were broken."""
    definitions = modules().get("sparks.ghosts.definitions")
    if definitions is not None:
        assert any(target.startswith("sparks.") for _, target in imports(definitions))
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    serve = modules()["sparks.pipeline.serve"]
    targets = {target for _, target in imports(serve)}
    assert {"sparks.backends.upstream", "sparks.pipeline.relay"} <= targets
