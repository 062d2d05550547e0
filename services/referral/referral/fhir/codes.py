"""The codes referral's FHIR resources carry, as data (``rules/fhir-codes.v1.json``).

``sdoh_categories``: the Gravity SDOH Clinical Care category codes (``SDOHCC-CodeSystemTemporaryCodes``);
a need whose code is one of them is filed under it. ``capacity`` and ``enrollment``: careloop's capacity
and program-enrollment statuses -> the code the same code system gives them; a status without one (an
``additional-assessment-required`` capacity) is sent as text, never a guessed code.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from careloop_shared.rules import Rule, RulesFile, load_rules

CODES_FILE = Path(__file__).resolve().parent.parent / "rules" / "fhir-codes.v1.json"


class GravityCode(Rule):
    code: str
    display: str


class FhirCodes(RulesFile):
    sdoh_categories: frozenset[str]
    capacity: dict[str, GravityCode]
    enrollment: dict[str, GravityCode]

    def sdoh_category(self, need: str) -> str | None:
        return need if need in self.sdoh_categories else None


@cache
def fhir_codes(path: Path = CODES_FILE) -> FhirCodes:
    return load_rules(FhirCodes, path)
