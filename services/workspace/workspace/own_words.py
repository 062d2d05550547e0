"""The words of the goals a patient set in their own words: careplan keeps them sealed with the contribution
that set each goal (``kind=personal-goal``; the goal's id is the contribution's) and with each that put it in
new words later (``kind=goal-reworded``, naming the goal), and the plan only the goal's code, so the pages
that show such a goal read its latest words from the contributions."""

from __future__ import annotations

from typing import Any

from workspace.client import Services
from workspace.codes import GOAL_REWORDED, OWN_WORDS_SHOWN, PERSONAL_GOAL


async def goal_words(
    services: Services, path: str, document: dict[str, Any], shown: bool = True
) -> dict[str, str]:
    """Goal id -> the patient's words (``path``: the patient's ``/v1/patients/{id}``); none when the plan
    has no such goal, the care team is not shown, or careplan does not answer (an outage, a refusal, or an
    erased patient's words: the goal then shows as set in their own words, without them)."""
    if not shown or not any(g.get("description") == PERSONAL_GOAL for g in document.get("goals", [])):
        return {}
    listing = await services.page(
        "careplan",
        f"{path}/care-team/contributions",
        limit=OWN_WORDS_SHOWN,
        kind=[PERSONAL_GOAL, GOAL_REWORDED],
    )
    return {
        str(c["goal_id"]): c["note"] for c in listing.items if c.get("note")
    }  # oldest first: the last wins
