"""Each screening instrument intake scores as a FHIR R4 ``Questionnaire``, built from the rules that
score it, so the form asks exactly what the scoring knows. Pure: the rules in, dicts out.

Its ``id`` is the instrument's, its ``version`` the rules' version, and its canonical ``url``
``urn:careloop:questionnaire:<instrument>``: a canonical stays the same on every server, and intake's
address differs from one deployment to the next, so the served copy is found by that ``url``. A
QuestionnaireResponse names it as ``<url>|<version>``; one posted to intake may also name the served
copy by its address (``Questionnaire/<id>``, or the same under this server's FHIR base).

Items keep the rules' order: the prompt, when the instrument has one, as a ``display`` item; each
scored item (``linkId`` and ``code`` its LOINC code, required): a score with its points as
``answerOption`` integers, or a choice with the rules' LOINC answer codes (``repeats`` for a multiple
choice, an exclusive answer flagged ``optionExclusive``); then each total, ``readOnly``: intake
computes it. Words are the rules' English wording.
"""

from __future__ import annotations

import re
from typing import Any

from careloop_shared.fhir import LOINC, coding
from intake.domain.scoring import ChoiceItem, ScoreItem, ScreeningRules, Wording

CANONICAL = "urn:careloop:questionnaire:"  # + instrument id
OPTION_EXCLUSIVE = "http://hl7.org/fhir/StructureDefinition/questionnaire-optionExclusive"
PROMPT = "prompt"  # the linkId of the display item that leads a form
LANGUAGE = "en"


def canonical_url(instrument: str) -> str:
    return CANONICAL + instrument


def machine_name(instrument: str) -> str:
    """A name FHIR takes as an identifier (``[A-Z][A-Za-z0-9_]*``): ``ahc-hrsn`` -> ``AHC_HRSN``."""
    name = re.sub(r"[^A-Za-z0-9]+", "_", instrument).strip("_").upper()
    return name if name[:1].isalpha() else f"Q_{name}"


def questionnaire(rules: ScreeningRules, instrument_id: str) -> dict[str, Any] | None:
    """The instrument as a Questionnaire, or None when the rules have no such instrument."""
    instrument = rules.instruments.get(instrument_id)
    if instrument is None:
        return None
    wording = instrument.wording.get(LANGUAGE)
    items: list[dict[str, Any]] = []
    if wording and wording.prompt:
        items.append({"linkId": PROMPT, "text": wording.prompt, "type": "display"})
    items += [_item(code, spec, wording) for code, spec in instrument.items.items()]
    items += [_total(total.code) for total in instrument.totals]
    return {
        "resourceType": "Questionnaire",
        "id": instrument_id,
        **({"language": LANGUAGE} if wording else {}),
        "url": canonical_url(instrument_id),
        "version": rules.version,
        "name": machine_name(instrument_id),
        "title": instrument.title,
        "status": "active",
        "subjectType": ["Patient"],
        "code": [coding(LOINC, instrument.panel)],
        "item": items,
    }


def _item(code: str, spec: ScoreItem | ChoiceItem, wording: Wording | None) -> dict[str, Any]:
    item: dict[str, Any] = {"linkId": code, "code": [coding(LOINC, code)]}
    if wording and code in wording.items:
        item["text"] = wording.items[code]
    if isinstance(spec, ScoreItem):
        options = [{"valueInteger": points} for points in range(spec.min, spec.max + 1)]
        return {**item, "type": "integer", "required": True, "answerOption": options}
    labels = wording.answers if wording else {}
    return {
        **item,
        "type": "choice",
        "required": True,
        **({"repeats": True} if spec.multiple else {}),
        "answerOption": [
            _choice(answer, labels.get(answer), answer in spec.exclusive) for answer in spec.answers
        ],
    }


def _choice(answer: str, label: str | None, exclusive: bool) -> dict[str, Any]:
    option: dict[str, Any] = {"valueCoding": coding(LOINC, answer, label)}
    if exclusive:
        option["extension"] = [{"url": OPTION_EXCLUSIVE, "valueBoolean": True}]
    return option


def _total(code: str) -> dict[str, Any]:
    return {"linkId": code, "code": [coding(LOINC, code)], "type": "integer", "readOnly": True}


def found(rules: ScreeningRules, *, url: str | None = None, name: str | None = None) -> list[dict[str, Any]]:
    """The Questionnaires a search finds, in the rules' order: ``url`` exactly (``<url>|<version>``: that
    version too), ``name`` from its start and ignoring case, as FHIR searches a string."""
    made = [q for instrument in rules.instruments if (q := questionnaire(rules, instrument)) is not None]
    if url is not None:
        canonical, _, version = url.partition("|")
        made = [q for q in made if q["url"] == canonical and version in ("", q["version"])]
    if name is not None:
        made = [q for q in made if q["name"].lower().startswith(name.lower())]
    return made


def instrument_named(reference: str, rules: ScreeningRules, base: str | None = None) -> str | None:
    """The instrument a QuestionnaireResponse's ``questionnaire`` names: the canonical url (with or
    without ``|<version>``), or the served Questionnaire's address (``Questionnaire/<id>``, or that
    under ``base``, this server's FHIR base); None when it names none intake scores."""
    target = reference.split("|", 1)[0]
    if target.startswith(CANONICAL):
        instrument: str | None = target.removeprefix(CANONICAL)
    else:
        local = target.removeprefix(f"{base}/") if base else target
        instrument = local.removeprefix("Questionnaire/") if local.startswith("Questionnaire/") else None
    return instrument if instrument in rules.instruments else None
