"""``careloop``: the platform from a terminal.

careloop token --agency agency-riverside            a development bearer token
careloop patients --agency agency-riverside         the agency's patients
careloop timeline PATIENT_ID --agency ...           the patient's case record as a table
careloop referrals PATIENT_ID --agency ...          the patient's referrals
careloop due --agency ...                           follow-ups due and overdue (work queue)
careloop verify PATIENT_ID --agency ...             recompute the record's hash chain
careloop demo                                       load the synthetic demo caseload
careloop replay --dsn postgresql://.../analytics    rebuild an analytics table from the topics
careloop sink --db analytics.duckdb                 every event into DuckDB, exactly once, continuously
careloop report --db analytics.duckdb               the measures programs report: tables and charts
careloop directory export|import DIR               the directory as an HSDS 3.0 CSV package
careloop dlq list|redrive --service referral        a service's dead letters, and sending them again
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from careloop_cli.client import Careloop, dev_token
from careloop_cli.dead_letters import add_parser as add_dead_letter_parser
from careloop_cli.demo import AGENCIES, CARE_MANAGERS, SUPERVISORS, caseload, steps
from careloop_cli.directory import add_parser as add_directory_parser
from careloop_cli.fhir_export import add_parser as add_export_parser
from careloop_cli.shown import shown

console = Console()


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title, show_lines=False)
    for column in columns:
        if column in ("id", "patient"):  # ids are copied into the next command: never cut them
            table.add_column(column, no_wrap=True, min_width=36)
        else:
            table.add_column(column)
    for row in rows:
        table.add_row(*[shown(v) for v in row])
    console.print(table)


def cmd_token(args: argparse.Namespace) -> int:
    print(dev_token(args.agency, args.role, args.person))
    return 0


def cmd_patients(args: argparse.Namespace, cl: Careloop) -> int:
    page = cl.get("intake", "/v1/patients", limit=args.limit)
    _table(
        f"Patients of {args.agency}",
        ["id", "name", "language", "contact", "registered"],
        [
            [
                p["id"],
                f"{p['given_name']} {p['family_name']}",
                p["preferred_language"],
                p["contact_preference"],
                p["created_at"][:19],
            ]
            for p in page["items"]
        ],
    )
    return 0


def cmd_timeline(args: argparse.Namespace, cl: Careloop) -> int:
    record = cl.get("record", f"/v1/patients/{args.patient_id}/record")
    _table(
        f"Case record of {args.patient_id}",
        ["#", "time", "source", "actor", "what happened"],
        [
            [e["seq"], e["time"][:19], e["source"].rsplit("/", 1)[-1], e["actor"], e["summary"]]
            for e in record["entries"]
        ],
    )
    return 0


def cmd_referrals(args: argparse.Namespace, cl: Careloop) -> int:
    page = cl.get("referral", "/v1/referrals", patient_id=args.patient_id)
    items = page["items"] if isinstance(page, dict) else page
    _table(
        f"Referrals of {args.patient_id}",
        ["id", "need", "program", "to agency", "status", "respond by"],
        [
            [
                r["id"],
                r["need"],
                r.get("program_id") or r.get("service_id"),
                r.get("receiving_agency_id"),
                r["status"],
                str(r.get("response_due_at", ""))[:19],
            ]
            for r in items
        ],
    )
    return 0


def cmd_due(args: argparse.Namespace, cl: Careloop) -> int:
    queue = cl.get("followup", "/v1/work-queue")
    items = queue["items"] if isinstance(queue, dict) else queue
    _table(
        f"Follow-ups due for {args.agency}",
        ["id", "patient", "reason", "priority", "due", "status"],
        [
            [f["id"], f["patient_id"], f["reason"], f["priority"], f["due_at"][:19], f["status"]]
            for f in items
        ],
    )
    return 0


def cmd_tasks(args: argparse.Namespace, cl: Careloop) -> int:
    tasks = cl.get("followup", "/v1/tasks", assignee=args.assignee, status=args.status, limit=args.limit)
    _table(
        f"Tasks of {args.person} ({args.agency}), {args.status}",
        ["id", "patient", "kind", "priority", "due", "status", "for"],
        [
            [
                t["id"],
                t["patient_id"],
                t["kind"],
                t["priority"],
                t["due_at"][:16],
                t["status"],
                t["assignee_id"] or t["assignee_role"],
            ]
            for t in tasks["items"]
        ],
    )
    return 0


def cmd_caseload(args: argparse.Namespace, cl: Careloop) -> int:
    if args.agency_wide:
        rows = cl.get("followup", "/v1/caseload/agency")["items"]
        _table(
            f"Caseloads of {args.agency}",
            ["care manager", "patients", "open tasks", "overdue", "urgent", "overdue follow-ups"],
            [
                [
                    r["care_manager_id"] or "(nobody)",
                    r["patients"],
                    r["open_tasks"],
                    r["overdue_tasks"],
                    r["urgent_tasks"],
                    r["overdue_follow_ups"],
                ]
                for r in rows
            ],
        )
        return 0
    rows = cl.get("followup", "/v1/caseload")["items"]
    _table(
        f"Caseload of {args.person} ({args.agency})",
        ["patient", "open tasks", "overdue", "urgent", "next follow-up"],
        [
            [
                r["patient_id"],
                r["open_tasks"],
                r["overdue_tasks"],
                r["urgent_tasks"],
                (r["next_follow_up_due"] or "-")[:16],
            ]
            for r in rows
        ],
    )
    return 0


def cmd_verify(args: argparse.Namespace, cl: Careloop) -> int:
    result = cl.get("record", f"/v1/patients/{args.patient_id}/record/verify")
    if result["intact"]:
        witnessed = result.get("witnessed_by_checkpoint")
        signed = f", the head signed in checkpoint {witnessed} still in it" if witnessed else ""
        console.print(f"[green]intact[/green]: {result['entries']} entries, every hash and MAC holds{signed}")
        return 0
    console.print(f"[red]broken[/red] at entry {result['first_broken_seq']}: {result['problem']}")
    return 1


def cmd_demo(args: argparse.Namespace) -> int:
    # Each agency's supervisor registers its patients, naming the care manager responsible.
    clients = {agency: Careloop(agency, "supervisor", SUPERVISORS[agency]) for agency in AGENCIES}
    work = list(steps(caseload(args.patients)))
    try:
        with Progress(console=console, transient=False) as progress:
            task = progress.add_task("Loading the demo caseload", total=len(work))
            for _, step in work:
                step(clients)
                progress.advance(task)
    finally:
        for client in clients.values():
            client.close()
    console.print(f"Loaded {args.patients} synthetic patients across {', '.join(AGENCIES)}.")
    people = ", ".join(f"{a}: {' and '.join(CARE_MANAGERS[a])}" for a in AGENCIES)
    console.print(f"Their care managers: {people} (supervisors: {', '.join(SUPERVISORS.values())}).")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from careloop_cli.replay import replay
    from careloop_shared.kafka import client_options
    from careloop_shared.settings import KafkaSettings

    # TLS and SASL from the same CARELOOP_KAFKA_* variables the services read.
    kafka = client_options(KafkaSettings(kafka_bootstrap_servers=args.bootstrap))
    counts = asyncio.run(replay(kafka, args.dsn, topic_prefix=args.topic_prefix))
    console.print(
        f"read {counts['read']} records, offered {counts['stored']} events to careloop_events,"
        f" skipped {counts['skipped']} that were not careloop events"
    )
    return 0


def cmd_sink(args: argparse.Namespace) -> int:
    from careloop_cli.analytics.sink import serve
    from careloop_shared.kafka import client_options
    from careloop_shared.settings import KafkaSettings

    kafka = client_options(KafkaSettings(kafka_bootstrap_servers=args.bootstrap))
    counts = asyncio.run(
        serve(
            kafka,
            args.db,
            topic_prefix=args.topic_prefix,
            until_caught_up=args.until_caught_up,
            batch_size=args.batch,
        )
    )
    console.print(
        f"read {counts.read} records: {counts.stored} new events, {counts.duplicates} already stored,"
        f" {counts.skipped} not careloop events"
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from careloop_cli.analytics.report import draw_charts, print_tables, read

    try:
        figs = read(args.db, agency=args.agency, month=args.month)
    except LookupError as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    print_tables(figs, console)
    if args.charts:
        for path in draw_charts(figs, Path(args.charts)):
            console.print(f"wrote {path}")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="careloop", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = root.add_subparsers(dest="command", required=True)
    agency = argparse.ArgumentParser(add_help=False)
    agency.add_argument("--agency", default=os.environ.get("CARELOOP_AGENCY", AGENCIES[0]))
    agency.add_argument("--role", default="care-manager")
    agency.add_argument(
        "--as",
        dest="person",
        default=os.environ.get("CARELOOP_PERSON", "dev-user"),
        help="who is acting (the token's subject), e.g. a demo care manager such as cm-riverside-ana",
    )
    sub.add_parser("token", parents=[agency], help="print a development token").set_defaults(run=cmd_token)
    p = sub.add_parser("patients", parents=[agency], help="list the agency's patients")
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(run=cmd_patients, needs_client=True)
    for name, run, text in (
        ("timeline", cmd_timeline, "show a patient's case record"),
        ("referrals", cmd_referrals, "show a patient's referrals"),
        ("verify", cmd_verify, "verify a patient's record"),
    ):
        p = sub.add_parser(name, parents=[agency], help=text)
        p.add_argument("patient_id")
        p.set_defaults(run=run, needs_client=True)
    sub.add_parser("due", parents=[agency], help="follow-ups due and overdue").set_defaults(
        run=cmd_due, needs_client=True
    )
    p = sub.add_parser("tasks", parents=[agency], help="a person's task list, most urgent first")
    p.add_argument("--assignee", default="me")
    p.add_argument("--status", default="open")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(run=cmd_tasks, needs_client=True)
    p = sub.add_parser("caseload", parents=[agency], help="a care manager's patients and their open work")
    p.add_argument("--agency-wide", action="store_true", help="every care manager's counts (supervisor)")
    p.set_defaults(run=cmd_caseload, needs_client=True)
    p = sub.add_parser("demo", help="load the synthetic demo caseload")
    p.add_argument("--patients", type=int, default=25)
    p.set_defaults(run=cmd_demo)
    p = sub.add_parser("replay", help="rebuild an analytics table from the topics, from the beginning")
    p.add_argument("--dsn", required=True, help="PostgreSQL database to write careloop_events into")
    p.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    p.add_argument("--topic-prefix", default=os.environ.get("CARELOOP_TOPIC_PREFIX", ""))
    p.set_defaults(run=cmd_replay)
    p = sub.add_parser("sink", help="read every event topic into a DuckDB file, exactly once, until stopped")
    p.add_argument("--db", required=True, help="the DuckDB file (created when missing)")
    p.add_argument("--until-caught-up", action="store_true", help="stop once the ends seen at start are read")
    p.add_argument("--batch", type=int, default=2000, help="events per transaction, at most")
    p.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    p.add_argument("--topic-prefix", default=os.environ.get("CARELOOP_TOPIC_PREFIX", ""))
    p.set_defaults(run=cmd_sink)
    p = sub.add_parser("report", help="the measures programs report, from the sink's DuckDB file")
    p.add_argument("--db", required=True, help="the DuckDB file `careloop sink` writes")
    p.add_argument("--agency", help="one agency only")
    p.add_argument("--month", help="one month only, YYYY-MM (UTC)")
    p.add_argument("--charts", metavar="DIR", help="also write PNG charts into DIR (needs matplotlib)")
    p.set_defaults(run=cmd_report)
    add_directory_parser(sub, agency)
    add_dead_letter_parser(sub)
    add_export_parser(sub, agency)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if getattr(args, "needs_client", False):
            client = Careloop(args.agency, args.role, args.person)
            try:
                return int(args.run(args, client))
            finally:
                client.close()
        return int(args.run(args))
    except httpx.HTTPStatusError as exc:
        console.print(
            f"[red]{exc.response.status_code}[/red] from {exc.request.url.path}: {exc.response.text[:300]}"
        )
        return 2
    except httpx.TransportError as exc:
        console.print(f"[red]cannot reach the service[/red] ({type(exc).__name__}); is `make up` running?")
        return 2


if __name__ == "__main__":
    sys.exit(main())
