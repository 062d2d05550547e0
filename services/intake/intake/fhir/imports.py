"""A FHIR ``QuestionnaireResponse`` posted to intake, read into the assessment command's answers.

The body names the instrument by ``questionnaire``: the canonical url of the Questionnaire intake
serves for it (``urn:careloop:questionnaire:<instrument>``, a ``|version`` is allowed) or that
Questionnaire's address (``Questionnaire/<instrument>``, or under this server's FHIR base); and the
patient by ``subject`` (``Patient/<id>``). Items are found by ``linkId`` (the item's LOINC code) at
any depth of groups; a score is a ``valueInteger``, a choice a LOINC ``valueCoding``; totals sent along
are left out (intake computes its own). The answers are then checked and scored exactly as a native
assessment's. Pure.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from careloop_shared.errors import Invalid, problem
from careloop_shared.fhir import LOINC
from intake.domain.scoring import ChoiceItem, InvalidAnswers, ScreeningRules, score
from intake.fhir.questionnaires import CANONICAL, instrument_named
from intake.fhir.schemas import ItemIn, QuestionnaireResponseIn


def subject_patient(body: QuestionnaireResponseIn) -> uuid.UUID:
    return uuid.UUID(body.subject.reference.removeprefix("Patient/"))


def instrument_of(body: QuestionnaireResponseIn, rules: ScreeningRules, base: str | None = None) -> str:
    instrument = instrument_named(body.questionnaire, rules, base)
    if instrument is None:
        raise Invalid.at(
            ["body", "questionnaire"],
            "unknown_questionnaire",
            f"not a questionnaire intake scores: {CANONICAL}<instrument> or Questionnaire/<instrument>,"
            f" one of {', '.join(sorted(rules.instruments))}",
        )
    return instrument


def _items(items: list[ItemIn], loc: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], ItemIn]]:
    for i, item in enumerate(items):
        yield (*loc, i), item
        yield from _items(item.item, (*loc, i, "item"))


def imported_answers(
    body: QuestionnaireResponseIn, rules: ScreeningRules, base: str | None = None
) -> tuple[str, dict[str, Any]]:
    """The instrument and the answers, keyed by LOINC item code, as ``AssessPatient`` takes them
    (``base``: this server's FHIR base, for a Questionnaire named by its address); refuses what does
    not fit with 422s naming the item's place in the body, never its value."""
    instrument = instrument_of(body, rules, base)
    spec = rules.instruments[instrument]
    totals = {t.code for t in spec.totals}
    answers: dict[str, Any] = {}
    where: dict[str, tuple[str | int, ...]] = {}
    problems = []
    for loc, item in _items(body.item, ("body", "item")):
        if item.linkId in totals or not item.answer:
            continue  # a total, or a group of items
        if item.linkId in answers:
            problems.append(problem(loc, "repeated", "this item is answered twice"))
            continue
        values: list[Any] = []
        for a, answer in enumerate(item.answer):
            if answer.valueCoding is not None:
                if answer.valueCoding.system not in (None, LOINC):
                    problems.append(
                        problem((*loc, "answer", a), "invalid_answer", "an answer code must be LOINC")
                    )
                values.append(answer.valueCoding.code)
            else:
                values.append(answer.valueInteger)
        item_spec = spec.items.get(item.linkId)
        if isinstance(item_spec, ChoiceItem) and item_spec.multiple:
            answers[item.linkId] = values
        elif len(values) == 1:
            answers[item.linkId] = values[0]
        else:
            problems.append(problem((*loc, "answer"), "invalid_answer", "this item takes one answer"))
            continue
        where[item.linkId] = loc
    if problems:
        raise Invalid(problems)
    try:
        score(rules, instrument, answers)  # the same checks the command makes, placed in this body
    except InvalidAnswers as refused:
        raise Invalid(
            [
                problem(
                    where.get(p["item"], ("body", "item")), "invalid_answer", f"{p['item']}: {p['reason']}"
                )
                for p in refused.by_item
            ]
        ) from None
    return instrument, answers
