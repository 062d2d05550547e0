"""HTTP request and response bodies of intake."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class PatientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    given_name: str = Field(min_length=1, max_length=200)
    family_name: str = Field(min_length=1, max_length=200)
    birth_date: date
    preferred_language: str = Field("en", pattern=r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$")


class PatientOut(BaseModel):
    id: uuid.UUID
    given_name: str
    family_name: str
    birth_date: date
    preferred_language: str
    created_at: datetime


class Created(BaseModel):
    id: uuid.UUID


class AssessmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instrument: str = Field(max_length=50)
    answers: dict[str, Any]


class AssessmentOut(BaseModel):
    id: uuid.UUID
    patient_id: uuid.UUID
    instrument: str
    rules_version: str
    total_score: int | None
    needs: list[dict[str, Any]]
    risk_level: str
    urgent_flags: list[str]
    assessed_at: datetime
