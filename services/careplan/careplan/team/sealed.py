"""The care team's free text, kept only sealed with the patient's data key, and shown opened.

A member's name and contact details are one sealed document (``sealed_details``), a contribution's note
another (``sealed_note``), each bound to the patient and to its row and column (moved to another row,
it does not open), so that intake destroying the key (erasure) makes them unreadable in every copy of
careplan's database, backups and replicas included.

The key comes from intake through ``careloop_shared.patient_keys``; a route asks for it before its unit
of work opens (``key_ahead``), so no pooled connection waits on intake, and the handler finds it cached.
Rows written before sealing keep their text in the clear (``name``, ``contact``, ``note``) and read as
they are until a background step seals them as new rows are (``handlers.seal_free_text_in_the_clear``,
walking ``InTheClear``). Once the key is destroyed a sealed value reads as erasure leaves a row: name '',
no contact, no note. No text here is searchable: careplan filters on no name, contact or note.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from careloop_shared.crypto import Erased
from careloop_shared.errors import NotFound
from careloop_shared.patient_keys import DataKey, PatientKeys, open_for, seal_for

DETAILS = "sealed_details"  # a member's {"name", "contact"}
NOTE = "sealed_note"  # a contribution's note
DETAIL_FIELDS = ("name", "contact")
ERASED_DETAILS: dict[str, Any] = {"name": "", "contact": None}  # as erasure leaves a member
# The tables, walked in this order for rows written before sealing.
MEMBERS, NOTES = "care_team_members", "contributions"


def _details_of(member_id: uuid.UUID) -> str:
    """What a member's sealed details are bound to (with the patient)."""
    return f"care-team-member/{member_id}/details"


def _note_of(contribution_id: uuid.UUID) -> str:
    return f"contribution/{contribution_id}/note"


async def seal_details(
    keys: PatientKeys, agency_id: str, patient_id: uuid.UUID, member_id: uuid.UUID, details: Mapping[str, Any]
) -> dict[str, Any]:
    """A member's name and contact details as stored: sealed (``Erased`` once the key is destroyed)."""
    document = {f: details.get(f) for f in DETAIL_FIELDS}
    return await seal_for(keys, agency_id, patient_id, _details_of(member_id), document)


async def seal_note(
    keys: PatientKeys, agency_id: str, patient_id: uuid.UUID, contribution_id: uuid.UUID, note: str | None
) -> dict[str, Any] | None:
    if note is None:
        return None
    return await seal_for(keys, agency_id, patient_id, _note_of(contribution_id), note)


def in_the_clear(row: Mapping[str, Any], details: Mapping[str, Any]) -> dict[str, Any]:
    """A member's row as shown, with these details and without what is sealed."""
    return {**{k: v for k, v in row.items() if k != DETAILS}, **{f: details[f] for f in DETAIL_FIELDS}}


async def member_shown(keys: PatientKeys, agency_id: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """A member's row as shown: the details opened, or as a row from before sealing keeps them."""
    sealed = row.get(DETAILS)
    if sealed is None:
        return in_the_clear(row, row)
    try:
        details = await open_for(keys, agency_id, row["patient_id"], _details_of(row["id"]), sealed)
    except Erased:
        details = ERASED_DETAILS
    return in_the_clear(row, details)


async def contribution_shown(
    keys: PatientKeys, agency_id: str, patient_id: uuid.UUID, row: Mapping[str, Any]
) -> dict[str, Any]:
    """A contribution's row as shown: the note opened, or as a row from before sealing keeps it."""
    shown = {k: v for k, v in row.items() if k != NOTE}
    sealed = row.get(NOTE)
    if sealed is None:
        return shown
    try:
        note = await open_for(keys, agency_id, patient_id, _note_of(row["id"]), sealed)
    except Erased:
        note = None
    return {**shown, "note": note}


@dataclass
class InTheClear:
    """This replica's walk through the rows written before sealing that keep their text in the clear: a
    round walks each table once in id order (``after``: the last row looked at), so rows it cannot seal
    are passed over until the next round. Counts only: no text, no patient."""

    after: dict[str, uuid.UUID] = field(default_factory=dict)
    walked: set[str] = field(default_factory=set)  # the tables walked to the end this round
    sealed: int = 0  # rows sealed this round
    blanked: int = 0  # rows of erased patients blanked this round
    unknown: int = 0  # rows passed over this round: intake knows no such patient of that agency
    remain: bool = True  # rows in the clear were left when the last round ended (or none ended yet)
    unknown_told: int = 0  # the unknown rows the log last told of
    intake_down: bool = False  # intake could not answer, and the log has told so

    def restart(self) -> None:
        """The next round walks every table from the start."""
        self.after.clear()
        self.walked.clear()
        self.sealed = self.blanked = self.unknown = 0


@dataclass(frozen=True)
class KeysAhead:
    """``PatientKeys`` answered from the keys a batch asked intake for before locking its rows, so sealing
    them under the locks waits on no one: each patient's key, or ``Erased`` / ``NotFound`` as intake said."""

    found: Mapping[tuple[str, uuid.UUID], DataKey | Erased | NotFound]

    async def key(self, agency_id: str, patient_id: uuid.UUID) -> DataKey:
        found = self.found[(agency_id, patient_id)]
        if isinstance(found, Erased | NotFound):
            raise found
        return found

    def forget(self, patient_id: uuid.UUID) -> None:
        """Nothing kept beyond the batch."""
