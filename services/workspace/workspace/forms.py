"""What the workspace's forms share: the per-form idempotency key, problems shown beside fields, and
sending a form to a service.

A form page is shown with a fresh key (a hidden ``form_key``); a corrected form keeps it, so however
often a form is sent, the service stores it once (a refused attempt stored nothing and runs anew). The
page's own checks and a service's 422 end up in one ``FormError``: a summary at the top, each message
beside its field. A service's words are kept, made plainer where they are pydantic's.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Annotated, Any, TypeVar

from fastapi import Form

from workspace.client import Problem, ServiceError, Services

FORM_KEY = "form_key"
FormKey = Annotated[str, Form(min_length=16, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]
Text = Annotated[str, Form(max_length=4000)]  # a typed answer; the services hold the real limits
Code = Annotated[str, Form(max_length=64)]  # a code chosen from a list; the service checks it
Version = Annotated[int, Form(ge=1, le=1_000_000)]  # the plan's version the form was made for
Choices = Annotated[list[str], Form(max_length=50)]  # the boxes ticked of a group

T = TypeVar("T")


def new_form_key() -> str:
    """The idempotency key of one form as shown."""
    return secrets.token_urlsafe(24)


def action_key(*parts: str) -> str:
    """The idempotency key of an action that happens once whoever shows it (a task moved to done)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


@dataclass
class FormError:
    """Why a form was not accepted: a message for the top of the page and the problems by field."""

    message: str
    problems: list[Problem] = field(default_factory=list)
    status: int = 422
    current_version: int | None = None  # a stale plan version: where the plan is now
    existing_id: uuid.UUID | None = None  # the patient already registered, for a likely duplicate

    def __str__(self) -> str:
        return self.message

    def for_field(self, name: str) -> list[str]:
        return [p.message for p in self.problems if p.field == name]

    @property
    def stale(self) -> bool:
        return self.status == 409

    @classmethod
    def from_service(cls, exc: ServiceError, renamed: Mapping[str, str] | None = None) -> FormError:
        """A service's refusal; ``renamed``: its field names that the form calls otherwise."""
        renamed = renamed or {}
        problems = [Problem(renamed.get(p.field, p.field), p.message) for p in exc.problems]
        version = re.search(r"plan is at version (\d+)", exc.message)
        current = int(version.group(1)) if version else None
        return cls(exc.message, problems, exc.status or 503, current, exc.existing_id)


class Checks:
    """The page's own checks of a form, before anything is sent: each failure names its field."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def fail(self, name: str, message: str) -> None:
        self.problems.append(Problem(name, message))

    def need(self, name: str, value: Any, message: str) -> bool:
        if value in (None, "", []):
            self.fail(name, message)
            return False
        return True

    def match(self, name: str, value: str, pattern: str, message: str) -> None:
        if value and not re.fullmatch(pattern, value):
            self.fail(name, message)

    def day(self, name: str, value: str, message: str) -> date | None:
        """A date as a date field sends it (yyyy-mm-dd), or None (and a problem) when it is not one."""
        if not value:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.fail(name, message)
            return None

    def future(self, name: str, value: str, zone: tzinfo, now: datetime, missing: str) -> datetime | None:
        """A time as a date-and-time field sends it, read in the workspace's zone, that is still to come; or
        None (and a problem: ``missing`` when nothing was entered)."""
        if not self.need(name, value, missing):
            return None
        try:
            when = datetime.fromisoformat(value).replace(tzinfo=zone)
        except ValueError:
            self.fail(name, "Enter a date and time, such as 2026-03-09T10:00.")
            return None
        if when <= now:
            self.fail(name, "Choose a time in the future.")
            return None
        return when

    def error(self) -> FormError | None:
        if not self.problems:
            return None
        return FormError("Some of what was entered needs correcting.", list(self.problems))


async def send(
    call: Awaitable[T], renamed: Mapping[str, str] | None = None, *, shown: tuple[int, ...] = (409, 422)
) -> tuple[T | None, FormError | None]:
    """A form's call to a service: its answer, or why it was refused (by default a 409 or 422, shown on
    the form). Anything else (a 403, an outage) ends the page as a ``ServiceError`` does."""
    try:
        return await call, None
    except ServiceError as exc:
        if exc.status in shown:
            return None, FormError.from_service(exc, renamed)
        raise


def none_if_blank(value: str) -> str | None:
    value = value.strip()
    return value or None


async def patient_name(services: Services, patient_id: object) -> str | None:
    """The patient's name for a form's heading, when the person may read it (else the id is enough)."""
    try:
        patient = await services.get("intake", f"/v1/patients/{patient_id}")
    except ServiceError as exc:
        if exc.status == 401:
            raise
        return None
    return f"{patient['given_name']} {patient['family_name']}"


async def current_plan(services: Services, patient_id: object) -> dict[str, Any] | None:
    """The patient's current care plan, or None when there is none yet (it follows the first assessment)."""
    try:
        plan: dict[str, Any] = await services.get("careplan", f"/v1/patients/{patient_id}/care-plan")
    except ServiceError as exc:
        if exc.status == 404:
            return None
        raise
    return plan


def stale_message(error: FormError, expected: int) -> None:
    """A 409 for a stale version says where the plan is now and asks for a reload."""
    if error.current_version is not None:
        error.message = (
            f"The plan changed while this page was open: it is now at version {error.current_version},"
            f" and this form was for version {expected}. Reload the patient's page to see what changed,"
            " then try again."
        )
