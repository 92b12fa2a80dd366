"""The house plan, checked from the source: which package may import which, and thin routes.

Every module's imports are read with `ast` (nothing is imported), including imports inside
functions and under `TYPE_CHECKING`: a late import is still a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

ALLOWED: dict[str, set[str]] = {
    "runtime": set(),
    "ledger_core": set(),
    "messaging": {"runtime"},
    "migrations": {"runtime", "ledger_core"},
    "gateway": {"runtime", "messaging", "ledger_core", "migrations"},
    "workers": {"runtime", "messaging", "ledger_core"},
    "vaultcraft": {"runtime", "messaging", "ledger_core", "migrations", "gateway", "workers"},
}
"""Each package and the packages of ours it may import: runtime at the bottom, the CLI and
supervisor (vaultcraft) at the top, gateway and workers side by side. The gateway reads the
migrations only for the schema head its readiness check expects."""

FORBIDDEN_IN_CORE = ("aiohttp", "dramatiq", "redis", "prometheus_client")
MAX_HANDLER_LINES = 40


def modules(package: str) -> Iterator[Path]:
    yield from sorted((ROOT / package).rglob("*.py"))


def imported(path: Path) -> Iterator[tuple[int, str]]:
    """Every module name `path` imports (absolute imports; ours never import relatively)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {package: set() for package in ALLOWED}
    for package in ALLOWED:
        for path in modules(package):
            for _, name in imported(path):
                top = name.split(".")[0]
                if top in ALLOWED and top != package:
                    graph[package].add(top)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path that returns to its start, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def offending(package: str, refused: tuple[str, ...]) -> list[str]:
    """`file:line name` for each import in `package` of a module under one of `refused`."""
    found = []
    for path in modules(package):
        for line, name in imported(path):
            if any(name == r or name.startswith(r + ".") for r in refused):
                found.append(f"{path.relative_to(ROOT)}:{line} {name}")
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The checker itself: a two-package loop is reported, a chain is not."""
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_between_packages() -> None:
    assert find_cycle(edges()) is None


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_the_layers_below(package: str) -> None:
    refused = tuple(sorted(set(ALLOWED) - ALLOWED[package] - {package}))
    assert offending(package, refused) == []


def test_gateway_never_reaches_the_sql_modules() -> None:
    """Routes call use cases (`ledger_core.services`), never `ledger_core.persistence`."""
    assert offending("gateway", ("ledger_core.persistence",)) == []


def test_gateway_and_workers_never_import_each_other() -> None:
    assert offending("gateway", ("workers",)) == []
    assert offending("workers", ("gateway",)) == []


def test_ledger_core_imports_no_web_broker_or_metrics_library() -> None:
    assert offending("ledger_core", FORBIDDEN_IN_CORE) == []


def handlers() -> Iterator[tuple[str, ast.AsyncFunctionDef]]:
    """Every function declared as a route with `@routes.<method>(...)`."""
    for path in modules("gateway/routes"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.AsyncFunctionDef) and any(
                isinstance(d, ast.Call)
                and isinstance(d.func, ast.Attribute)
                and isinstance(d.func.value, ast.Name)
                and d.func.value.id == "routes"
                for d in node.decorator_list
            ):
                yield f"{path.relative_to(ROOT)}:{node.lineno} {node.name}", node


def test_handlers_are_found() -> None:
    assert len(list(handlers())) > 40


def test_route_handlers_stay_thin() -> None:
    """A handler parses, calls one use case and renders: at most 40 lines, docstring included."""
    long = [
        f"{where} ({node.end_lineno - node.lineno + 1} lines)"
        for where, node in handlers()
        if node.end_lineno is not None and node.end_lineno - node.lineno + 1 > MAX_HANDLER_LINES
    ]
    assert long == []


def module_graph(package: str) -> dict[str, set[str]]:
    """Which modules of `package` each of its modules imports (by dotted name)."""
    names = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
        for path in modules(package)
    }
    graph: dict[str, set[str]] = {name: set() for name in names}
    for name, path in names.items():
        for _, target in imported(path):
            if target in names and target != name:
                graph[name].add(target)
    return graph


@pytest.mark.parametrize("package", ["gateway", "messaging", "runtime"])
def test_no_import_cycle_between_modules(package: str) -> None:
    """Inside the package too, type-only imports included: auth, state and registry once
    imported each other."""
    assert find_cycle(module_graph(package)) is None


def imported_names(path: Path) -> Iterator[tuple[int, str]]:
    """`module.name` for every `from module import name` in `path`, and every module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name


def test_persistence_is_sql_only() -> None:
    """Deciding who may act, and recording that they did, is the use cases' work: no SQL
    module outside `persistence/audit` writes audit records, checks a role or calls a use
    case."""
    refused = (
        "ledger_core.persistence.audit.records",
        "ledger_core.accounts.require_admin",
        "ledger_core.services",
    )
    found = set()
    for path in modules("ledger_core/persistence"):
        if path.parent.name == "audit":
            continue
        for _, name in imported_names(path):
            for r in refused:
                if name == r or name.startswith(r + "."):
                    found.add(f"{path.relative_to(ROOT)} {r}")
    assert found == set()


IMPORT_TIME_EFFECTS = {"setup_broker", "set_broker", "declare_actors", "actor", "from_env"}
IMPORT_TIME_EFFECTS |= {"settings", "engine", "create_engine"}
"""Calls that configure a broker, declare an actor or read the settings."""


def _callee(node: ast.AST) -> str:
    """The last name of what `node` calls or names: `actor` for `dramatiq.actor(...)`."""
    target = node.func if isinstance(node, ast.Call) else node
    if isinstance(target, ast.Attribute):
        return target.attr
    return target.id if isinstance(target, ast.Name) else ""


def import_time_calls(source: str) -> Iterator[str]:
    """What a module calls of `IMPORT_TIME_EFFECTS` when it is imported: its module-level
    statements and decorators, not function bodies nor a `__main__` block."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            parts = [*node.decorator_list]
            found = [
                d
                for d in parts
                if not isinstance(d, ast.Call) and _callee(d) in IMPORT_TIME_EFFECTS
            ]
        else:
            parts, found = [node], []
        found += [
            sub
            for part in parts
            for sub in ast.walk(part)
            if isinstance(sub, ast.Call) and _callee(sub) in IMPORT_TIME_EFFECTS
        ]
        for sub in found:
            yield f"{getattr(sub, 'lineno', '?')} {ast.unparse(sub)[:60]}"


def test_the_import_time_checker_finds_effects() -> None:
    """The checker itself: a broker set up and an actor declared at import are reported,
    the same calls inside a function are not."""
    source = (
        "import dramatiq\nbroker = setup_broker()\n"
        "@dramatiq.actor\ndef job() -> None:\n    settings()\n"
        "def later() -> None:\n    setup_broker()\n"
    )
    assert list(import_time_calls(source)) == ["2 setup_broker()", "3 dramatiq.actor"]


def test_only_the_worker_bootstrap_acts_at_import() -> None:
    """`workers.bootstrap` sets up the broker and declares the actors; every other worker
    module reads its settings and touches the broker only when it runs."""
    found = [
        f"{path.relative_to(ROOT)}:{call}"
        for path in modules("workers")
        if path.name != "bootstrap.py"
        for call in import_time_calls(path.read_text())
    ]
    assert found == []
    assert list(import_time_calls((ROOT / "workers" / "bootstrap.py").read_text()))
