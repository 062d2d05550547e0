"""Every service keeps the shape the README describes, so that knowing one means knowing all."""

import ast
import importlib
import inspect
from pathlib import Path

import pytest

from tests.conftest import SERVICES

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 350


def handler_modules(service: str) -> list[str]:
    package = ROOT / "services" / service / service
    return sorted(
        ".".join(path.relative_to(package.parent).with_suffix("").parts)
        for path in package.rglob("handlers.py")
    )


@pytest.mark.parametrize("service", SERVICES)
def test_every_handler_is_called_by_a_unit_test_on_the_fake_store(service):
    unit_tests = "".join(
        p.read_text() for p in (ROOT / "services" / service / "tests").glob(f"test_{service}*_handlers.py")
    )
    assert unit_tests, f"{service} has no tests/test_{service}*_handlers.py"
    handlers = [
        name
        for module_name in handler_modules(service)
        for name, function in inspect.getmembers(
            importlib.import_module(module_name), inspect.iscoroutinefunction
        )
        if not name.startswith("_") and function.__module__ == module_name
    ]
    assert handlers
    untested = [name for name in handlers if name not in unit_tests]
    assert not untested, f"{service}: handlers without a unit test: {untested}"


@pytest.mark.parametrize("service", SERVICES)
def test_no_production_module_is_a_room_holding_two_things(service):
    too_long = {
        str(path.relative_to(ROOT)): n
        for path in (ROOT / "services" / service / service).rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not too_long


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_never_imports_another_service(service):
    others = set(SERVICES) - {service}
    for path in (ROOT / "services" / service).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not {n.split(".")[0] for n in names} & others, f"{path} imports another service"


def _imports(package: Path) -> dict[str, set[str]]:
    """Each module of ``package`` with the modules of the same package it imports, wherever the import
    stands (at the top, in a function, under TYPE_CHECKING): ``from a import b`` names ``a.b`` where that
    is a module, else ``a``."""
    modules = {
        ".".join(p.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__"): p
        for p in package.rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found |= {
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                    for a in node.names
                }
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def _loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """The sets of modules that import each other in a loop (strongly connected, more than one)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    loops: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(graph[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            members = []
            while (top := stack.pop()) != module:
                members.append(top)
            if members:
                loops.append(sorted([module, *members]))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return loops


@pytest.mark.parametrize("package", ["shared/careloop_shared", *(f"services/{s}/{s}" for s in SERVICES)])
def test_no_modules_import_each_other_in_a_loop(package):
    """A loop of imports is one room split in two (or a lower layer that knows a higher one): the kernel
    and every service read from the bottom up."""
    assert not _loops(_imports(ROOT / package))


def test_the_loop_finder_finds_a_loop():
    assert _loops({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _loops({"a": {"b"}, "b": set()}) == []
