"""The education wing's table: education given, with the version of each material, the channel and
whether the patient explained it back."""

from __future__ import annotations

from typing import Any

from careloop_shared.db import Store, insert_row


class EducationStore(Store):
    async def insert_education(self, row: dict[str, Any]) -> None:
        await insert_row(self.db, "education_records", row)
