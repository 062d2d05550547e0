"""Which services intake releases a patient's data key to. Pure: no I/O here.

A service that keeps sensitive free text about a patient seals it with the patient's own data key, so
erasure by key destruction reaches its database and backups too. intake releases the key only to a
service (the ``service`` role, never a person) that ``rules/key-release.v1.json`` names, with what it
seals; analytics is not named, so it never gets one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from careloop_shared.auth import SERVICE_ROLE
from careloop_shared.errors import Forbidden
from careloop_shared.rules import Rule, RulesFile

RULES_FILE = Path(__file__).resolve().parent.parent / "rules" / "key-release.v1.json"

ServiceName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")]


class KeyHolder(Rule):
    purpose: str = Field(min_length=1, description="What the service seals with the patients' keys.")


class KeyReleaseRules(RulesFile):
    services: dict[ServiceName, KeyHolder] = Field(description="By name, as its token's sub names it.")


class KeyNotReleased(Forbidden):
    """The caller is not a service these rules name; says which rule, never who asked."""


def check_release(rules: KeyReleaseRules, role: str, service: str) -> None:
    """Raise ``KeyNotReleased`` unless a service the rules name is asking."""
    if role != SERVICE_ROLE:
        raise KeyNotReleased("a patient's data key is released only to a service, never to a person")
    if service not in rules.services:
        raise KeyNotReleased("this service is not one intake's key-release rules release data keys to")
