"""Instruments as a form asks them: each item's text, and the answers to choose from. Pure: no I/O.

Built from the same rules file that scores them, so a form never offers an answer the scoring does not
know, and a new instrument in the rules is a new form without code.
"""

from __future__ import annotations

from typing import Any

from intake.domain.scoring import ChoiceItem, Instrument, ScoreItem, ScreeningRules


def questionnaire(rules: ScreeningRules, instrument_id: str, language: str) -> dict[str, Any] | None:
    """The instrument worded in ``language`` (English when it is not written in it), or None."""
    instrument = rules.instruments.get(instrument_id)
    if instrument is None:
        return None
    worded_in = language if language in instrument.wording else "en"
    wording = instrument.wording.get(worded_in)
    return {
        "id": instrument_id,
        "title": instrument.title,
        "panel": instrument.panel,
        "rules_version": rules.version,
        "language": worded_in if wording else None,
        "prompt": wording.prompt if wording else None,
        "items": [_item(code, spec, instrument, worded_in) for code, spec in instrument.items.items()],
    }


def _item(code: str, spec: ScoreItem | ChoiceItem, instrument: Instrument, language: str) -> dict[str, Any]:
    wording = instrument.wording.get(language)
    text = wording.items.get(code, code) if wording else code
    if isinstance(spec, ScoreItem):
        labels = wording.scale if wording else {}
        options = [{"value": v, "label": labels.get(str(v), str(v))} for v in range(spec.min, spec.max + 1)]
        return {"code": code, "text": text, "type": "score", "multiple": False, "options": options}
    answers = wording.answers if wording else {}
    return {
        "code": code,
        "text": text,
        "type": "choice",
        "multiple": spec.multiple,
        "exclusive": list(spec.exclusive),
        "options": [{"value": a, "label": answers.get(a, a)} for a in spec.answers],
    }
