"""``careloop report``: the measures programs report, from the analytics file, as tables and charts.

Reads the views of ``views`` (read-only, so it can run between the sink's batches). Rows name agencies,
programs, needs, areas and reason codes only: never a patient, pseudonymous or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from rich.text import Text

from careloop_cli.analytics import store
from careloop_cli.shown import shown


@dataclass(frozen=True)
class Figure:
    """One measure: a title, its columns and its rows, ordered."""

    name: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]


# (view, title, columns, order): the columns as the view names them.
MEASURES: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    (
        "measure_closed_loop",
        "Referrals with a closed loop (by month made)",
        (
            "agency_id",
            "program_id",
            "month",
            "referrals",
            "closed",
            "closed_pct",
            "median_hours_to_accept",
            "median_hours_to_complete",
        ),
        "agency_id, program_id, month",
    ),
    (
        "measure_rejection_reasons",
        "Rejections by reason (by month rejected)",
        ("agency_id", "program_id", "month", "reason", "rejections"),
        "agency_id, program_id, month, rejections DESC, reason",
    ),
    (
        "measure_appointments",
        "Appointments with the program: attended and missed (by month of the appointment)",
        (
            "agency_id",
            "receiving_agency_id",
            "program_id",
            "month",
            "appointments",
            "attended",
            "missed",
            "cancelled",
            "pending",
            "missed_pct",
        ),
        "agency_id, program_id, month",
    ),
    (
        "measure_follow_ups",
        "Follow-ups done on time (by month due)",
        (
            "agency_id",
            "month",
            "due_points",
            "on_time",
            "late",
            "missed",
            "pending",
            "cancelled",
            "on_time_pct",
        ),
        "agency_id, month",
    ),
    (
        "measure_needs",
        "Needs found per 100 patients screened (by month assessed)",
        ("agency_id", "area", "month", "need", "patients_with_need", "screened", "per_100_screened"),
        "agency_id, area, month, need",
    ),
    (
        "measure_network_gaps",
        "Network gaps (by month detected)",
        ("agency_id", "month", "need", "program_category", "area", "detected", "still_open"),
        "agency_id, month, need, program_category NULLS FIRST, area",
    ),
)


def figures(
    con: duckdb.DuckDBPyConnection, *, agency: str | None = None, month: str | None = None
) -> list[Figure]:
    """Every measure, for one agency and one month when given."""
    out = []
    for view, title, columns, order in MEASURES:
        rows = con.execute(
            f"SELECT {', '.join(columns)} FROM {view}"
            " WHERE ($agency IS NULL OR agency_id = $agency) AND ($month IS NULL OR month = $month)"
            f" ORDER BY {order}",
            {"agency": agency, "month": month},
        ).fetchall()
        out.append(Figure(view.removeprefix("measure_"), title, columns, tuple(tuple(r) for r in rows)))
    return out


def read(db: str, *, agency: str | None = None, month: str | None = None) -> list[Figure]:
    with store.opened(db, read_only=True) as con:
        missing = {v for v, *_ in MEASURES} - {
            r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
        }
        if missing:
            raise LookupError("the file has no analytics views: run `careloop sink --db` on it first")
        return figures(con, agency=agency, month=month)


def _cell(value: Any) -> Text:
    return shown(f"{value:g}" if isinstance(value, float) else value, empty="-")


def print_tables(figs: list[Figure], console: Any) -> None:
    from rich.table import Table

    for fig in figs:
        table = Table(title=fig.title)
        for column in fig.columns:
            numeric = any(isinstance(r[fig.columns.index(column)], int | float) for r in fig.rows)
            table.add_column(column.replace("_", " "), justify="right" if numeric else "left")
        for row in fig.rows:
            table.add_row(*[_cell(v) for v in row])
        if not fig.rows:
            table.caption = "no events for this selection"
        console.print(table)


# Per chart: the figure, the value drawn, and the columns that label a bar.
CHARTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("closed_loop", "closed_pct", ("agency_id", "program_id", "month")),
    ("closed_loop", "median_hours_to_accept", ("agency_id", "program_id", "month")),
    ("closed_loop", "median_hours_to_complete", ("agency_id", "program_id", "month")),
    ("rejection_reasons", "rejections", ("agency_id", "program_id", "month", "reason")),
    ("appointments", "missed_pct", ("agency_id", "program_id", "month")),
    ("follow_ups", "on_time_pct", ("agency_id", "month")),
    ("needs", "per_100_screened", ("agency_id", "area", "month", "need")),
    ("network_gaps", "still_open", ("agency_id", "month", "need", "area")),
)


def draw_charts(figs: list[Figure], directory: Path) -> list[Path]:
    """One PNG per chart in ``directory``: horizontal bars, one per row of the figure. Needs matplotlib."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    by_name = {f.name: f for f in figs}
    written = []
    for name, value, labels in CHARTS:
        fig = by_name[name]
        rows = [r for r in fig.rows if r[fig.columns.index(value)] is not None]
        figure, axes = plt.subplots(figsize=(10, 1.4 + 0.35 * max(len(rows), 1)))
        axes.barh(
            [" / ".join(str(r[fig.columns.index(c)]) for c in labels) for r in rows],
            [float(r[fig.columns.index(value)]) for r in rows],
        )
        axes.invert_yaxis()
        axes.set_xlabel(value.replace("_", " "))
        figure.suptitle(fig.title if rows else f"{fig.title}: nothing to draw", x=0.01, ha="left")
        if not rows:
            axes.set_axis_off()
        figure.tight_layout()
        path = directory / f"{name}-{value}.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
    return written
