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
