"""What the event fuzz sends (tests/fuzz/events.py): bodies drawn from the contracts, one at a time or as
one patient's sequence.

One at a time, every value is fair: text with NUL, markup and right-to-left marks, integers past 64 bits,
times at the calendar's ends and at the widest offsets. A sequence is one patient's events in an order
drawn too (a referral's status changing before the referral, a plan before its assessment, an erasure in
the middle), some delivered twice, a few from another agency, with plain values, so that most pass their
contract and reach the rules, and with the ids that tie events together (a plan's, its interventions', a
referral's, a follow-up's) drawn from two a patient, so that later events name earlier ones, or not.
"""

from __future__ import annotations

import enum
import random
import re
import string
import types
import typing
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from careloop_shared.events import Event

# Text a person or a careless producer could send, beside Hypothesis' own.
HOSTILE_TEXT = (
    "\x00",
    "a\x00b",
    "<script>alert(1)</script>",
    "\u202egnp.exe",
    "' OR 1=1 --",
    "x" * 3000,
    " ",
)
EDGE_TIMES = (
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1, 1, 1, 12, tzinfo=timezone(timedelta(hours=14))),
    datetime(9999, 12, 31, 12, tzinfo=timezone(timedelta(hours=-14))),
    datetime(1900, 1, 1, tzinfo=UTC),
)
PLAIN_TEXT = st.text(alphabet=string.ascii_letters + string.digits + " -", min_size=1, max_size=20)
# Times around now, so that what a sequence schedules falls due, or is late, while the fuzz waits.
NEAR = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC))

# How often each type comes up in a sequence: a journey's events more often than the rest.
SEQUENCE_WEIGHTS = {
    "careloop.intake.patient_registered.v1": 3,
    "careloop.intake.patient_assessed.v1": 4,
    "careloop.careplan.plan_updated.v1": 4,
    "careloop.referral.referral_made.v1": 4,
    "careloop.referral.referral_status_changed.v1": 5,
    "careloop.followup.follow_up_completed.v1": 3,
    "careloop.intake.consent_recorded.v1": 2,
}
# Words careloop's rules act on, for fields whose description names none (a field's description that
# lists its values, "FHIR CarePlan status: draft, active, on-hold, ...", is read for them first).
NAMED = {
    "status": ("draft", "requested", "accepted", "active", "in-progress", "completed"),
    "from_status": ("draft", "requested", "accepted", "in-progress", "on-hold"),
    "to_status": ("requested", "accepted", "rejected", "cancelled", "in-progress", "on-hold", "failed",
                  "completed", "entered-in-error"),
    "need": ("food-insecurity", "housing-instability", "transportation-insecurity", "depression",
             "intimate-partner-violence"),
    "instrument": ("phq-2", "phq-9", "ahc-hrsn"),
    "program_category": ("food-assistance", "housing-assistance", "transportation", "behavioral-health"),
    "program_categories": ("food-assistance", "housing-assistance", "transportation", "behavioral-health"),
}  # fmt: skip
WORD = re.compile(r"[a-z][a-z0-9-]*")
# Ids that name another event's id: a plan's assessment, the referral a referral replaces.
SAME_ID_AS = {"based_on_assessment_id": "assessment_id", "replaces_referral_id": "referral_id"}
UNLINKED = {"patient_id", "agency_id", "actor_id"}


def _text(hostile: bool) -> st.SearchStrategy[str]:
    if not hostile:
        return PLAIN_TEXT
    return st.one_of(st.text(max_size=30), st.sampled_from(HOSTILE_TEXT), st.just(""))


def _times(hostile: bool) -> st.SearchStrategy[str]:
    if not hostile:
        return NEAR.map(lambda t: t.isoformat())
    ordinary = st.datetimes(
        min_value=datetime(1990, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
    )
    return st.one_of(ordinary, ordinary, st.sampled_from(EDGE_TIMES), st.datetimes()).map(
        lambda t: t.isoformat()
    )


def _scalar(annotation: type, hostile: bool) -> st.SearchStrategy[Any] | None:
    if issubclass(annotation, BaseModel):
        return body_of(annotation, hostile)
    if issubclass(annotation, enum.Enum):
        return st.sampled_from([m.value for m in annotation])
    if issubclass(annotation, bool):
        return st.booleans()
    if issubclass(annotation, int):
        if not hostile:
            return st.integers(-2, 400)
        return st.one_of(st.integers(-10, 1000), st.integers(), st.sampled_from([2**31, 2**63, -(2**63) - 1]))
    if issubclass(annotation, float):
        return st.floats(-10, 400) if not hostile else st.floats(allow_nan=False, allow_infinity=False)
    if issubclass(annotation, uuid.UUID):
        return st.uuids().map(str)
    if issubclass(annotation, datetime):
        return _times(hostile)
    if issubclass(annotation, date):
        return (NEAR.map(datetime.date) if not hostile else st.dates()).map(date.isoformat)
    if issubclass(annotation, str):
        return _text(hostile)
    return None


def value_of(annotation: Any, hostile: bool = True) -> st.SearchStrategy[Any]:
    """JSON values for a field of this type (its constraints left to the schema check)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return value_of(typing.get_args(annotation)[0], hostile)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([value_of(a, hostile) for a in typing.get_args(annotation)])
    if origin is typing.Literal:
        return st.sampled_from(typing.get_args(annotation))
    if origin in (list, tuple, set, frozenset, typing.Sequence):
        args = typing.get_args(annotation) or (Any,)
        return st.lists(value_of(args[0], hostile), max_size=4)
    if origin is dict:
        _, item = typing.get_args(annotation) or (str, Any)
        return st.dictionaries(_text(hostile), value_of(item, hostile), max_size=3)
    if annotation is type(None):
        return st.none()
    if isinstance(annotation, type) and (scalar := _scalar(annotation, hostile)) is not None:
        return scalar
    return st.one_of(st.none(), _text(hostile), st.integers(-5, 5))


def body_of(model: type[BaseModel], hostile: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    """A body of the model: its required fields, and each optional one present or not."""
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        drawn = value_of(info.annotation, hostile)
        if not hostile and (words := words_for(key, info.description)):
            word = st.sampled_from(words)
            named = st.lists(word, max_size=3) if "list" in str(info.annotation) else word
            drawn = st.one_of(named, named, named, drawn)
        (required if info.is_required() else optional)[key] = drawn
    return st.fixed_dictionaries(required, optional=optional)


def words_for(key: str, description: str | None) -> tuple[str, ...]:
    """The values a field's description names ("..., e.g. food-insecurity", "open, in-progress, done or
    cancelled."), else those careloop's rules act on for a field of that name (``NAMED``)."""
    listed = (description or "").rsplit(":", 1)[-1].replace(" or ", ",").replace("e.g.", ",")
    words = tuple(w for part in listed.split(",") if WORD.fullmatch(w := part.strip(" .")))
    return words or NAMED.get(key, ())


def _drawing(examples: int, seed_value: int) -> Any:
    """Hypothesis as a plain generator: ``examples`` draws from a seed, nothing shrunk or stored."""

    def wrap(test: Any) -> Any:
        return seed(seed_value)(
            settings(
                max_examples=examples,
                database=None,
                deadline=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )(test)
        )

    return wrap


def draw(model: type[Event], examples: int, seed_value: int) -> list[tuple[dict[str, Any], bool]]:
    """``examples`` bodies of the model, each with whether it keeps its drawn agency (a quarter do)."""
    drawn: list[tuple[dict[str, Any], bool]] = []

    @_drawing(examples, seed_value)
    @given(body_of(model), st.integers(0, 3))
    def collect(body: dict[str, Any], agency_choice: int) -> None:
        drawn.append((dict(body), agency_choice == 0))

    collect()
    return drawn


@dataclass(frozen=True)
class Step:
    """One event of a patient's sequence: its type, its body, whether it is delivered twice (the same
    record again, as after a producer's retry) and whether it names another agency than the patient's."""

    model: type[Event]
    body: dict[str, Any]
    twice: bool
    foreign: bool


def draw_sequences(models: list[type[Event]], count: int, seed_value: int) -> list[list[Step]]:
    """``count`` sequences of 2-10 events, each a patient's, in drawn order, their ids tied together.
    Types, order, redeliveries, agencies and ties come from a ``random.Random`` Hypothesis seeds once a
    sequence (its own choices favour the first of a list), the bodies from Hypothesis."""
    weights = [SEQUENCE_WEIGHTS.get(m.type, 1) for m in models]
    drawn: list[list[Step]] = []

    @_drawing(count, seed_value)
    @given(st.data())
    def collect(data: st.DataObject) -> None:
        rng = data.draw(st.randoms(use_true_random=True))
        pools: dict[str, list[str]] = {}  # the patient's ids, two of each kind
        steps = []
        for model in rng.choices(models, weights, k=rng.randint(2, 10)):
            body = tie(data.draw(body_of(model, hostile=False)), pools, rng)
            steps.append(Step(model, body, twice=rng.random() < 0.15, foreign=rng.random() < 0.1))
        drawn.append(steps)

    collect()
    return drawn


def tie(value: Any, pools: dict[str, list[str]], rng: random.Random, parent: str = "") -> Any:
    """The value with each id that names an event or a part of one (``plan_id``, an intervention's
    ``id``, ``replaces_referral_id``) drawn from the patient's two of its kind."""
    if isinstance(value, list):
        return [tie(v, pools, rng, parent) for v in value]
    if not isinstance(value, dict):
        return value
    tied = {}
    for key, v in value.items():
        kind = f"{parent.removesuffix('s')}_id" if key == "id" else SAME_ID_AS.get(key, key)
        if kind.endswith("_id") and key not in UNLINKED and _is_uuid(v):
            pool = pools.setdefault(kind, [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in "ab"])
            tied[key] = rng.choice(pool)
        else:
            tied[key] = tie(v, pools, rng, key)
    return tied


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        return False
    return True
