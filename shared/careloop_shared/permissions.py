"""Who may do what: the permission matrix (role x resource x action), read from a versioned data file.

``rules/permissions.v1.json`` names each resource with its actions, and each role with the
``resource:action`` permissions it grants. Every HTTP route names the one permission it needs
(``http.needs``); one dependency checks it before anything else runs. Which rows a permitted caller
sees is the route's own business (its agency's patients; the referrals sent to a provider's agency).

``python -m careloop_shared.permissions table`` prints the matrix as the README's Markdown table.
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

from pydantic import model_validator

from careloop_shared.auth import ROLES
from careloop_shared.errors import Forbidden
from careloop_shared.rules import Rule, RulesFile, load_rules

PERMISSIONS_FILE = Path(__file__).resolve().parent / "rules" / "permissions.v1.json"


class Resource(Rule):
    description: str
    actions: dict[str, str]  # action -> what it allows


class Role(Rule):
    description: str
    grants: list[str]  # resource:action


class PermissionMatrix(RulesFile):
    resources: dict[str, Resource]
    roles: dict[str, Role]

    @model_validator(mode="after")
    def _consistent(self) -> PermissionMatrix:
        if set(self.roles) != ROLES:
            raise ValueError(f"roles must be exactly {sorted(ROLES)}")
        known = set(self.permissions())
        for name, role in self.roles.items():
            unknown = sorted(set(role.grants) - known)
            if unknown:
                raise ValueError(f"role {name} grants unknown permissions {unknown}")
        return self

    def permissions(self) -> list[str]:
        return [f"{r}:{a}" for r, resource in self.resources.items() for a in resource.actions]

    def allows(self, role: str, permission: str) -> bool:
        granted = self.roles.get(role)
        return granted is not None and permission in granted.grants


class MissingPermission(Forbidden):
    """The caller's role does not grant what the route needs; the answer names the permission."""

    def __init__(self, role: str, permission: str | None) -> None:
        if permission is None:
            super().__init__("this route names no permission, so nobody may use it")
        else:
            super().__init__(f"role {role} lacks permission {permission}", missing_permission=permission)


def authorize(matrix: PermissionMatrix, role: str, permission: str | None) -> None:
    """Raise MissingPermission unless ``role`` grants ``permission`` (a route without one: nobody)."""
    if permission is None or not matrix.allows(role, permission):
        raise MissingPermission(role, permission)


@cache
def load_matrix(path: Path = PERMISSIONS_FILE) -> PermissionMatrix:
    return load_rules(PermissionMatrix, path)


def markdown_table(matrix: PermissionMatrix) -> str:
    """The matrix as a Markdown table: a row per permission, a column per role."""
    roles = list(matrix.roles)
    lines = [
        "| resource | action | " + " | ".join(roles) + " |",
        "| --- | --- | " + " | ".join(":-:" for _ in roles) + " |",
    ]
    for name, resource in matrix.resources.items():
        for action, meaning in resource.actions.items():
            marks = ["yes" if matrix.allows(role, f"{name}:{action}") else "" for role in roles]
            lines.append(f"| `{name}` | `{action}`: {meaning} | " + " | ".join(marks) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] != ["table"]:
        raise SystemExit("usage: python -m careloop_shared.permissions table")
    print(markdown_table(load_matrix()))
