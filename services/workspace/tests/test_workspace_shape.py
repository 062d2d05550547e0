"""The workspace keeps the rules ``tests/test_shape.py`` holds every service to (it is not among
``tests.conftest.SERVICES``, whose fixtures expect a service with Kafka topics): no module passes 350
lines, and it imports no service; it reaches them over HTTP only."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 350
SERVICES = {"intake", "careplan", "referral", "followup", "record"}


def test_no_production_module_is_a_room_holding_two_things():
    too_long = {
        str(path.relative_to(ROOT)): n
        for path in (ROOT / "workspace").rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not too_long


def test_the_workspace_imports_no_service():
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not {n.split(".")[0] for n in names} & SERVICES, f"{path} imports a service"


def test_the_workspace_has_no_handlers_to_cover():
    """Its routes call services; should a ``handlers.py`` appear, ``tests/test_shape.py``'s rule applies."""
    assert not list((ROOT / "workspace").rglob("handlers.py"))
