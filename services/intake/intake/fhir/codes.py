"""The codes intake's FHIR resources carry beyond the screening rules, as data (``rules/fhir-codes.v1.json``).

``sdoh_categories``: the Gravity SDOH Clinical Care category codes (``SDOHCC-CodeSystemTemporaryCodes``);
a need whose code is one of them is filed under it. ``needs``: each need's words and, only where the
SDOH Clinical Care IG shows the code in its category's Gravity value set (an IG example or map, or
``domain.md``), its SNOMED CT condition code with ``source`` saying where. The IG binds the other
categories to Gravity value sets kept in VSAC, whose content the IG does not carry: a need without a
confirmed code is sent as text, never a guessed code.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import Field

from careloop_shared.rules import Rule, RulesFile, load_rules

CODES_FILE = Path(__file__).resolve().parent.parent / "rules" / "fhir-codes.v1.json"


class SnomedCode(Rule):
    code: str
    display: str
    source: str = Field(min_length=1)  # where the code was confirmed, for whoever checks or changes it


class NeedWords(Rule):
    text: str
    snomed: SnomedCode | None = None


class FhirCodes(RulesFile):
    sdoh_categories: frozenset[str]
    needs: dict[str, NeedWords]

    def need_text(self, need: str) -> str:
        words = self.needs.get(need)
        return words.text if words else need.replace("-", " ").capitalize()

    def sdoh_category(self, need: str) -> str | None:
        return need if need in self.sdoh_categories else None


@cache
def fhir_codes(path: Path = CODES_FILE) -> FhirCodes:
    return load_rules(FhirCodes, path)
