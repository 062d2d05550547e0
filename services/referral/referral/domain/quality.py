"""A program's quality, measured from its referral history, never typed in. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class History:
    """Counts over a program's referrals that were sent (drafts and entries in error excluded)."""

    sent: int = 0
    accepted: int = 0  # ever accepted, whatever happened next
    rejected: int = 0
    closed: int = 0  # completed, failed, or cancelled after acceptance
    completed: int = 0
    closed_with_outcome: int = 0
    median_hours_to_accept: float | None = None


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass(frozen=True)
class Quality:
    history: History

    @property
    def acceptance_rate(self) -> float | None:
        return _rate(self.history.accepted, self.history.accepted + self.history.rejected)

    @property
    def completion_rate(self) -> float | None:
        return _rate(self.history.completed, self.history.closed)

    @property
    def closed_with_outcome_rate(self) -> float | None:
        return _rate(self.history.closed_with_outcome, self.history.closed)

    def score(self) -> float:
        """0..1 for ranking; a program without history gets the neutral 0.5."""
        h = self.history
        # Laplace smoothing: two referrals say little about a program, twenty say more.
        accept = (h.accepted + 1) / (h.accepted + h.rejected + 2)
        complete = (h.completed + 1) / (h.closed + 2)
        return round((accept + complete) / 2, 4)

    def figures(self) -> dict[str, Any]:
        return {
            "referrals": self.history.sent,
            "acceptance_rate": self.acceptance_rate,
            "median_hours_to_accept": self.history.median_hours_to_accept,
            "completion_rate": self.completion_rate,
            "closed_with_outcome_rate": self.closed_with_outcome_rate,
        }


NO_HISTORY = Quality(History())


def with_quality(services: list[dict[str, Any]], histories: Mapping[str, History]) -> list[dict[str, Any]]:
    """Services with the quality figures measured from their referral history."""
    return [{**s, "quality": Quality(histories.get(s["id"], History())).figures()} for s in services]
