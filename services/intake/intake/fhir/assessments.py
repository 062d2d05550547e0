"""An assessment as FHIR R4: the ``QuestionnaireResponse`` (the answers as given, items by LOINC code),
an ``Observation`` per answered item and per total (LOINC-coded, filed under the Gravity SDOH category
of the need the item screens for), and a ``Condition`` per need it identified (an SDOH health concern).

Pure: an assessment row and the rules in, dicts out. Which item screens for which need is read from
the screening rules (the need domains' conditions and the totals' bands), never listed here. A need is
``unconfirmed``: a screen suggests it; agreeing it with the patient is a care manager's step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from careloop_shared.fhir import LOINC, SDOH_CATEGORY, SNOMED, coding, concept, instant, reference
from intake.domain.scoring import Instrument, ScreeningRules, Wording
from intake.fhir.codes import FhirCodes
from intake.fhir.questionnaires import canonical_url
from intake.fhir.resources import staff_reference

OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CONDITION_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/condition-category"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


def need_sources(instrument: Instrument | None) -> dict[str, list[str]]:
    """Item or total LOINC code -> the needs it screens for, from the rules: a domain's items and
    totals, a band's total, and the items a total sums."""
    if instrument is None:
        return {}
    sums = {t.code: t.items for t in instrument.totals}
    found: dict[str, list[str]] = {}

    def add(code: str | None, need: str) -> None:
        for c in [code, *sums.get(code or "", [])] if code else []:
            if need not in found.setdefault(c, []):
                found[c].append(need)

    for domain in instrument.domains:
        for condition in domain.when_any:
            add(condition.item or condition.total, domain.need)
    for total in instrument.totals:
        for band in total.bands:
            for need in band.needs:
                add(total.code, need.code)
    return found


def _wording(rules: ScreeningRules, instrument: str) -> Wording | None:
    spec = rules.instruments.get(instrument)
    return spec.wording.get("en") if spec else None


def _answer(value: Any, wording: Wording | None) -> dict[str, Any]:
    if isinstance(value, int):
        return {"valueInteger": value}
    label = wording.answers.get(value) if wording else None
    return {"valueCoding": coding(LOINC, str(value), label)}


def questionnaire_response(row: Mapping[str, Any], rules: ScreeningRules) -> dict[str, Any]:
    """The answers as given (each item's ``linkId`` is its LOINC code) and the totals intake computed,
    to the Questionnaire of the instrument as the rules scored it (``<url>|<rules version>``)."""
    wording = _wording(rules, row["instrument"])
    items = []
    for observed in row["observations"]:
        item: dict[str, Any] = {"linkId": observed["code"]}
        text = wording.items.get(observed["code"]) if wording else None
        if text:
            item["text"] = text
        values = observed["value"] if isinstance(observed["value"], list) else [observed["value"]]
        item["answer"] = [_answer(v, wording) for v in values]
        items.append(item)
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "id": str(row["id"]),
        "questionnaire": f"{canonical_url(row['instrument'])}|{row['rules_version']}",
        "status": "completed",
        "subject": reference("Patient", row["patient_id"]),
        "authored": instant(row["assessed_at"]),
        "item": items,
    }
    if row.get("assessed_by"):
        resource["author"] = staff_reference(row["assessed_by"])
    return resource


def observation_ids(row: Mapping[str, Any], code: str) -> list[str]:
    """The ids of the Observations made of one item or total (one per answer of a multiple choice)."""
    observed = next((o for o in row["observations"] if o["code"] == code), None)
    if observed is None:
        return []
    if isinstance(observed["value"], list):
        return [f"{row['id']}-{code}-{v}" for v in observed["value"]]
    return [f"{row['id']}-{code}"]


def observations(row: Mapping[str, Any], rules: ScreeningRules, codes: FhirCodes) -> list[dict[str, Any]]:
    spec = rules.instruments.get(row["instrument"])
    wording = _wording(rules, row["instrument"])
    sources = need_sources(spec)
    sums = {t.code: t.items for t in spec.totals} if spec else {}
    made = []
    for observed in row["observations"]:
        code = observed["code"]
        categories = [concept(coding(OBSERVATION_CATEGORY, "survey", "Survey"))] + [
            concept(coding(SDOH_CATEGORY, category))
            for need in sources.get(code, [])
            if (category := codes.sdoh_category(need))
        ]
        text = wording.items.get(code) if wording else None
        base: dict[str, Any] = {
            "resourceType": "Observation",
            "status": "final",
            "category": categories,
            "code": concept(coding(LOINC, code), text=text),
            "subject": reference("Patient", row["patient_id"]),
            "effectiveDateTime": instant(row["assessed_at"]),
            "derivedFrom": [reference("QuestionnaireResponse", row["id"])],
        }
        if observed.get("interpretation"):
            base["interpretation"] = [concept(text=observed["interpretation"])]
        if code in sums:
            members = [i for item in sums[code] for i in observation_ids(row, item)]
            base["hasMember"] = [reference("Observation", i) for i in members]
        values = observed["value"] if isinstance(observed["value"], list) else [observed["value"]]
        for made_id, value in zip(observation_ids(row, code), values, strict=True):
            answer = _answer(value, wording)
            value_element = (
                {"valueInteger": answer["valueInteger"]}
                if "valueInteger" in answer
                else {"valueCodeableConcept": concept(answer["valueCoding"])}
            )
            made.append({**base, "id": made_id, **value_element})
    return made


def conditions(row: Mapping[str, Any], rules: ScreeningRules, codes: FhirCodes) -> list[dict[str, Any]]:
    """One health concern per need the assessment identified, with the observations that show it."""
    sources = need_sources(rules.instruments.get(row["instrument"]))
    made: list[dict[str, Any]] = []
    seen: set[str] = set()
    for need in row["needs"]:
        code = need["code"]
        if code in seen:
            continue
        seen.add(code)
        category = codes.sdoh_category(code)
        words = codes.needs.get(code)
        snomed = [coding(SNOMED, words.snomed.code, words.snomed.display)] if words and words.snomed else []
        evidence = [
            reference("Observation", i)
            for observed in row["observations"]
            if code in sources.get(observed["code"], [])
            for i in observation_ids(row, observed["code"])
        ]
        condition: dict[str, Any] = {
            "resourceType": "Condition",
            "id": f"{row['id']}-{code}",
            "clinicalStatus": concept(coding(CONDITION_CLINICAL, "active", "Active")),
            "verificationStatus": concept(coding(CONDITION_VERIFICATION, "unconfirmed", "Unconfirmed")),
            "category": [concept(coding(CONDITION_CATEGORY, "health-concern", "Health Concern"))]
            + ([concept(coding(SDOH_CATEGORY, category))] if category else []),
            "code": concept(*snomed, text=codes.need_text(code)),
            "subject": reference("Patient", row["patient_id"]),
            "recordedDate": instant(row["assessed_at"]),
            "evidence": [{"detail": [*evidence, reference("QuestionnaireResponse", row["id"])]}],
        }
        if need.get("severity"):
            condition["severity"] = concept(text=need["severity"])
        made.append(condition)
    return made
