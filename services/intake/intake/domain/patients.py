"""Rules about patients' identifying details. Pure: no I/O here."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from careloop_shared.contracts import ContactChannel

_NOT_NAME = re.compile(r"[^\w\s]")
_SPACES = re.compile(r"\s+")


def normalised_name(given_name: str, family_name: str) -> str:
    """The key two registrations of one person share: accents, case, punctuation and spacing aside."""

    def fold(part: str) -> str:
        decomposed = unicodedata.normalize("NFKD", part)
        plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
        return _SPACES.sub(" ", _NOT_NAME.sub(" ", plain)).strip()

    return f"{fold(given_name)}|{fold(family_name)}"


def postal_area(postal_code: str | None) -> str | None:
    """The coarse area used for program matching: the first three characters, never the full code."""
    if not postal_code:
        return None
    return postal_code.replace(" ", "").upper()[:3] or None


def contact_problems(preference: str, phone: str | None, email: str | None) -> list[str]:
    """What the chosen way of contact lacks."""
    if preference in ("phone", "text") and not phone:
        return [f"contact_preference {preference} needs a phone number"]
    if preference == "email" and not email:
        return ["contact_preference email needs an email address"]
    return []


def safe_channels(channels: Iterable[str] | None) -> list[ContactChannel] | None:
    """The channels marked safe, each once, in one order (so an unchanged list compares equal);
    ``None`` when the patient has not said, ``[]`` when no channel is safe."""
    if channels is None:
        return None
    marked = {ContactChannel(c) for c in channels}
    return [c for c in ContactChannel if c in marked]
