"""What the forms offer to choose from (``rules/form-choices.v1.json``), read once.

The services own these codes and check every answer against their own rules; this file only says what
a form lists. A service that refuses a code answers 422 naming the field, shown beside it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from careloop_shared.contracts import ContactChannel, ContactPreference
from careloop_shared.rules import Rule, RulesFile, load_rules

CHOICES_FILE = Path(__file__).parent / "rules" / "form-choices.v1.json"


class ToDoChoices(Rule):
    """What adding a to-do offers, as followup's task rules have it (``to_do``)."""

    purposes: list[str]
    priorities: list[str]  # most pressing first
    furthest_days: float


class ArrangedContactChoices(Rule):
    """What arranging a contact offers, as followup's rules have it (``arranged_contact``)."""

    purposes: list[str]
    channels: list[str]
    always_allowed: list[str]  # in person, whatever the plan's channel
    cancel_reasons: list[str]

    def channels_for(self, plan_channel: str | None) -> list[str]:
        """The plan's channel and in person; every channel before a plan says (followup checks again)."""
        if not plan_channel:
            return list(self.channels)
        return [c for c in self.channels if c == plan_channel or c in self.always_allowed]


class FormChoices(RulesFile):
    about: str
    languages: dict[str, str]  # code -> name, in the order a form lists them
    consent_purposes: dict[str, str]
    program_categories: list[str]
    needs: list[str]
    stated_needs: list[str]  # the needs the plan library names: a care-team member may raise one
    plan_transitions: dict[str, list[str]]  # FHIR CarePlan.status -> where a person may move it
    activity_transitions: dict[str, list[str]]  # an intervention's activity status, the same way
    goal_transitions: dict[str, list[str]]  # FHIR Goal.lifecycleStatus, the same way
    goal_achievements: list[str]  # FHIR Goal.achievementStatus
    care_team_relationships: list[str]
    care_team_roles: list[str]  # suggestions: a role is any code
    services: dict[str, str]  # service code -> title, as the necessity criteria name them
    referral_priorities: list[str]
    education_channels: list[str]
    goal_progress: list[str]
    barriers: list[str]
    next_steps: list[str]
    reschedule_reasons: list[str]
    task_close_reasons: list[str]
    arranged_contact: ArrangedContactChoices
    to_do: ToDoChoices

    @property
    def contact_preferences(self) -> list[str]:
        return [p.value for p in ContactPreference]

    @property
    def contact_channels(self) -> list[str]:
        return [c.value for c in ContactChannel]

    def language_name(self, code: str | None) -> str:
        if not code:
            return "—"
        return self.languages.get(code, code)


@cache
def form_choices() -> FormChoices:
    return load_rules(FormChoices, CHOICES_FILE)
