"""Fuzz every service's consumers with events drawn from their contracts, hostile values included.

    python -m tests.fuzz.events [--examples 20] [--seed N] [--types careloop.intake.patient_assessed.v1]

Schemathesis walks the HTTP APIs; the consumers take input too, from any producer with access to a topic.
For every event type some service consumes, this draws ``--examples`` bodies from the event's contract
(Hypothesis, field by field from the model's types: every optional field present or not, text with NUL,
markup and right-to-left marks, integers past 64 bits, times at the calendar's ends and at the widest
offsets), each for a fresh patient of a fresh agency (a quarter of them with a drawn agency id instead),
and publishes them as binary-mode CloudEvents keyed by the patient, as a careloop producer would.

Each event is judged first: careloop keeps it if it passes its type's published JSON Schema, reads as its
contract says, and carries none of the values the event catalogue says no service keeps (text with NUL,
numbers past 32 bits, times outside 1900-2999: ``careloop_shared.events.refusal_of``). Then, once every
consuming service's group has committed every record on its topics and no outbox holds anything (so what
the events caused in turn is handled too), each consuming service's dead-letter topic is read:

- an event careloop keeps must not be dead-lettered by any consumer, unless one of its rules refused it
  by name (a ``careloop_shared.errors.Refusal``, such as careplan's assessment from another agency than
  its plan's): a ``ValidationError`` would mean a contract promises what the consumer does not take, any
  other error (after the consumer's retries) that a handler fails on input it was promised;
- an event careloop does not keep may be applied (a consumer that stores none of its odd values takes
  it) or refused, but a consumer that dead-letters it must do so for what it is (``ValidationError`` or
  ``UndecodableEvent``), not after a handler failed on it;
- every service answers ``/readyz`` afterwards;
- the case record of up to 100 of the run agency's patients whose events careloop kept verifies, as their
  care manager asks record (``/record/verify``): the chain holds over the events' bytes as drawn;
- each sequence's patient (``--sequences``, ``tests/fuzz/drawn.py``: one patient's events in a drawn order,
  some twice, a few naming another agency) has every event careloop kept in their case record once, and it
  verifies; and every read the services offer about a patient, and every list, answers no 5xx to a care
  manager or a supervisor of each agency the sequences named, nor to a provider of each agency their
  referrals went to, whatever state the orders left.

Writes ``<out>/summary.json`` (counts by type and service, findings) and exits 1 on any finding.
Bootstrap servers, topic prefix and databases as the bench reads them (``tests.perf.bench_common``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jsonschema
from pydantic import ValidationError

from careloop_shared.contracts import ReferralMade
from careloop_shared.errors import Refusal
from careloop_shared.events import CONTENT_TYPE, REGISTRY, SPEC_VERSION, Event, refusal_of
from careloop_shared.kafka import consumer_lag
from careloop_shared.runtime import ServiceRuntime
from careloop_shared.schemas import path_of
from careloop_shared.testing import bearer
from careloop_shared.topology import EventFlow, event_flow, shipped_runtimes
from tests.chaos.tally import read_topics, waiting
from tests.fuzz.drawn import draw, draw_sequences
from tests.fuzz.fuzz import PORTS, service_url
from tests.perf.bench_common import BenchConfig, config_from_env
from tests.perf.bench_kafka import header, producer

# How a consumer refuses an event it does not take: anything else in a dead letter is a handler's crash.
REFUSALS = ("ValidationError", "UndecodableEvent")


def refusals_by_rule() -> set[str]:
    """The names of the refusals careloop's rules raise (``careloop_shared.errors.Refusal`` and its kinds,
    the services' own included: a careplan refusing an assessment from another agency than its plan's). A
    consumer dead-letters an event so refused after its retries, with that reason; it is a rule, not a crash.
    """
    shipped_runtimes()  # every service's modules imported, so their refusals are known
    found, todo = set(), [Refusal]
    while todo:
        kind = todo.pop()
        found.add(kind.__name__)
        todo += kind.__subclasses__()
    return found


def _kept(model: type[Event], value: bytes) -> bool:
    """Whether the event is one careloop keeps: it reads as its contract says, and carries no value the
    catalogue says no service keeps (``careloop_shared.events.refusal_of``)."""
    try:
        event = model.model_validate_json(value)
    except ValidationError:
        return False
    return refusal_of(event) is None


def headers_for(model: type[Event], event_id: uuid.UUID, patient: str) -> list[tuple[str, bytes]]:
    values = {
        "ce_specversion": SPEC_VERSION,
        "ce_id": str(event_id),
        "ce_type": model.type,
        "ce_source": model.source,
        "ce_subject": patient,
        "ce_time": datetime.now(UTC).isoformat(),
        "ce_correlationid": str(uuid.uuid4()),
        "content-type": CONTENT_TYPE,
    }
    return [(k, v.encode()) for k, v in values.items()]


async def settle(cfg: BenchConfig, flow: EventFlow, limit_s: float) -> dict[str, Any]:
    """Until every consuming service's group has committed every record on the topics it reads (a
    partition it never committed counting from its start) and no outbox holds an event, twice running:
    what the events sent caused is then handled too."""
    subscriptions = defaultdict(list)
    for event_type, services in flow.consumers.items():
        for service in services:
            subscriptions[service].append(cfg.topic(event_type))
    started, clean = time.monotonic(), 0
    state: dict[str, Any] = {}
    while time.monotonic() < started + limit_s:
        try:
            lag = {
                s: await consumer_lag(cfg.bootstrap, f"{cfg.prefix}{s}", ts)
                for s, ts in subscriptions.items()
            }
            state = {"lag": {s: n for s, n in lag.items() if n}, "outbox": await waiting(cfg.db_urls)}
        except Exception as exc:  # a service's database or the broker busy: ask again
            state = {"error": repr(exc)[:200]}
        clean = clean + 1 if state.get("lag") == {} and state.get("outbox") == {} else 0
        if clean >= 2:
            return {"settled": True, "waited_s": round(time.monotonic() - started, 1)}
        await asyncio.sleep(0.5)
    return {"settled": False, **state}


def prepare(
    args: argparse.Namespace, prefix: str, flow: EventFlow
) -> tuple[dict[str, dict[str, Any]], list[Any]]:
    """The events to send (ce_id -> type, consumers, body, whether careloop keeps it, and for a sequence's
    event its number) and the records, a sequence's in its order with its redeliveries."""
    agency = f"evfuzz-{uuid.uuid4().hex[:8]}"
    wanted = set(args.types.split(",")) if args.types else None
    consumed = {t: c for t, c in sorted(flow.consumers.items()) if c and (not wanted or t in wanted)}
    judges = {
        t: jsonschema.Draft202012Validator(
            json.loads(path_of(t).read_text()), format_checker=jsonschema.FormatChecker()
        )
        for t in consumed
    }
    sent: dict[str, dict[str, Any]] = {}

    def record(model: type[Event], body: dict[str, Any], **more: Any) -> Any:
        event_id, patient = uuid.uuid4(), body["patient_id"]
        value = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
        sent[str(event_id)] = {
            "type": model.type,
            "allowed": judges[model.type].is_valid(body) and _kept(model, value),
            "consumers": consumed[model.type],
            "body": body,
            **more,
        }
        return (f"{prefix}{model.type}", value, patient.encode(), headers_for(model, event_id, patient))

    records: list[Any] = []
    for n, event_type in enumerate(sorted(flow.consumers)):
        if event_type not in consumed:
            continue
        for body, keep_agency in draw(REGISTRY[event_type], args.examples, args.seed + n):
            body["patient_id"] = str(uuid.uuid4())
            if not keep_agency or not isinstance(body.get("agency_id"), str):
                body["agency_id"] = agency
            records.append(record(REGISTRY[event_type], body))
    models = [REGISTRY[t] for t in consumed]
    for n, steps in enumerate(draw_sequences(models, args.sequences, args.seed)):
        patient, order = str(uuid.uuid4()), random.Random(args.seed + n)
        own = [
            record(
                s.model, {**s.body, "patient_id": patient, "agency_id": agency + "-b" * s.foreign}, sequence=n
            )
            for s in steps
        ]
        for again in [r for s, r in zip(steps, list(own), strict=True) if s.twice]:
            # the same record again, anywhere after the first in the patient's order, as a redelivery
            own.insert(order.randint(own.index(again) + 1, len(own)), again)
        records += own
    return sent, records


async def run(
    args: argparse.Namespace,
    cfg: BenchConfig,
    runtimes: Mapping[str, ServiceRuntime],
    sent: dict[str, dict[str, Any]],
    records: list[Any],
) -> dict[str, Any]:
    dlq_of = {s: cfg.topic(r.dead_letter_topic) for s, r in runtimes.items() if r.spec.handlers}
    kafka = producer(cfg.bootstrap)
    await kafka.start()
    try:
        for topic, value, key, headers in records:
            await kafka.send(topic, value, key=key, headers=headers)
        await kafka.flush()
    finally:
        await kafka.stop()
    print(f"[event-fuzz] {len(sent)} events sent; waiting for the consumers", flush=True)
    state = await settle(cfg, event_flow(runtimes), args.settle_timeout)
    held = await read_topics(cfg.bootstrap, list(dlq_of.values()))
    dead: dict[tuple[str, str], dict[str, str]] = {}
    for service, topic in dlq_of.items():
        for r in held[topic]:
            ce_id = header(r, "ce_id")
            if ce_id in sent:
                dead[(ce_id, service)] = {
                    "error_type": header(r, "dlq_error_type") or "",
                    "error": header(r, "dlq_error") or "",
                }
    findings: list[dict[str, Any]] = []
    rules = refusals_by_rule()
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for ce_id, what in sent.items():
        for service in what["consumers"]:
            found = dead.get((ce_id, service))
            outcome = "applied" if found is None else f"dead-lettered ({found['error_type']})"
            counts[f"{what['type']} -> {service}"][
                f"{'allowed' if what['allowed'] else 'refused'}: {outcome}"
            ] += 1
            if found is None or found["error_type"] in rules:
                continue  # applied, or refused by a rule of the service's, by name (after its retries)
            if what["allowed"]:
                problem = "refused" if found["error_type"] in REFUSALS else "crashed on"
                findings.append(
                    {
                        "problem": f"{service} {problem} an event careloop keeps",
                        "ce_id": ce_id,
                        **what,
                        **found,
                    }
                )
            elif found["error_type"] not in REFUSALS:
                findings.append(
                    {
                        "problem": f"{service} crashed on an event it should refuse",
                        "ce_id": ce_id,
                        **what,
                        **found,
                    }
                )
    if not state.get("settled"):
        findings.append({"problem": "the consumers did not settle", "state": state})
    async with httpx.AsyncClient(timeout=10) as client:
        for service in PORTS:
            try:
                ready: int | str = (await client.get(f"{service_url(service)}/readyz")).status_code
            except httpx.HTTPError as exc:
                ready = repr(exc)
            if ready != 200:
                findings.append({"problem": f"{service} not ready afterwards", "answer": ready})
        verified = await _verify_records(client, sent, findings)
        sequences = await _check_sequences(client, sent, dead, findings)
        reads = await _read_after_sequences(client, sent, findings)
    summary = {
        "seed": args.seed,
        "records_verified": verified,
        "sequences": sequences,
        "reads_after_sequences": reads,
        "sent": len(sent),
        "allowed": sum(1 for s in sent.values() if s["allowed"]),
        "settled": state,
        "outcomes": {k: dict(v) for k, v in sorted(counts.items())},
        "findings": findings,
    }
    return summary


# How many of the patients whose events careloop kept have their case record verified afterwards.
VERIFIED_RECORDS = 100


async def _verify_records(
    client: httpx.AsyncClient, sent: dict[str, dict[str, Any]], findings: list[dict[str, Any]]
) -> int:
    """The case record of patients of the run's own agency whose events careloop kept, verified as their
    care manager would: the chain over the events' bytes exactly as drawn (odd text, the largest numbers
    kept) must hold. How many were verified."""
    patients = list(
        dict.fromkeys(
            (s["body"]["patient_id"], s["body"]["agency_id"])
            for s in sent.values()
            if s["allowed"] and s["body"]["agency_id"].startswith("evfuzz-") and "sequence" not in s
        )
    )[:VERIFIED_RECORDS]
    for patient, agency in patients:
        url = f"{service_url('record')}/v1/patients/{patient}/record/verify"
        answer = await client.get(url, headers=bearer(agency, subject="evfuzz"))
        if answer.status_code != 200 or answer.json().get("intact") is not True:
            findings.append(
                {
                    "problem": "a case record does not verify",
                    "patient_id": patient,
                    "answer": answer.text[:300],
                }
            )
    return len(patients)


async def _check_sequences(
    client: httpx.AsyncClient,
    sent: dict[str, dict[str, Any]],
    dead: Mapping[tuple[str, str], Any],
    findings: list[dict[str, Any]],
) -> dict[str, int]:
    """Each sequence's patient, read from record as the care manager of the agency that holds the case
    record (the agency of its first entry): every event careloop kept and record did not refuse by name
    is in it exactly once, redeliveries included, nothing is in it twice, and the chain verifies."""
    by_patient: dict[str, list[str]] = defaultdict(list)
    for ce_id, s in sent.items():
        if "sequence" in s:
            by_patient[s["body"]["patient_id"]].append(ce_id)
    read = 0
    for patient, ce_ids in by_patient.items():
        entries, intact = None, None
        for agency in dict.fromkeys(sent[c]["body"]["agency_id"] for c in ce_ids):
            auth, url = bearer(agency, subject="evfuzz"), f"{service_url('record')}/v1/patients/{patient}"
            answer = await client.get(f"{url}/record", headers=auth)
            if answer.status_code == 200:
                entries = [e["event_id"] for e in answer.json()["entries"]]
                intact = (await client.get(f"{url}/record/verify", headers=auth)).json().get("intact")
                break
        kept = [c for c in ce_ids if sent[c]["allowed"] and (c, "record") not in dead]
        if entries is None:
            if kept:
                findings.append({"problem": "a sequence's case record is missing", "patient_id": patient})
            continue
        read += 1
        held = Counter(entries)
        twice = sorted(e for e, n in held.items() if n > 1)
        missing = sorted(c for c in kept if not held[c])
        if twice or missing or intact is not True:
            findings.append(
                {
                    "problem": "a sequence's case record is not its events once each, verified",
                    "patient_id": patient,
                    "twice": twice,
                    "missing": missing,
                    "intact": intact,
                }
            )
    return {"patients": len(by_patient), "records_read": read}


async def _reads(client: httpx.AsyncClient) -> list[tuple[str, str]]:
    """Each service's reads a care manager makes with no input but, at most, a patient: the GET routes of
    its OpenAPI document whose only path parameter is ``patient_id`` and that need no query parameter."""
    found = []
    for service in PORTS:
        doc = (await client.get(f"{service_url(service)}/openapi.json")).json()
        for path, operations in doc["paths"].items():
            get = operations.get("get")
            required = [
                p for p in (get or {}).get("parameters", []) if p.get("required") and p["in"] == "query"
            ]
            if get and not required and re.findall(r"{(\w+)}", path) in ([], ["patient_id"]):
                found.append((service, path))
    return found


async def _read_after_sequences(
    client: httpx.AsyncClient, sent: dict[str, dict[str, Any]], findings: list[dict[str, Any]]
) -> dict[str, int]:
    """Every read of the services about each sequence's patient, and every list: as a care manager and a
    supervisor of each agency the patient's events named, and as a provider of each agency a referral of
    theirs went to. Whatever states the drawn orders left, none may answer 5xx. How many reads each service
    answered with each status."""
    readers: dict[tuple[str, str], set[str]] = defaultdict(set)  # (agency, role) -> patients
    for s in sent.values():
        if "sequence" in s:
            body = s["body"]
            for role in ("care-manager", "supervisor"):
                readers[(body["agency_id"], role)].add(body["patient_id"])
            if s["type"] == ReferralMade.type and isinstance(body.get("receiving_agency_id"), str):
                readers[(body["receiving_agency_id"], "provider")].add(body["patient_id"])
    reads, made = await _reads(client), Counter[str]()
    for (agency, role), patients in sorted(readers.items()):
        auth = bearer(agency, role, "evfuzz")
        for service, path in reads:
            for patient in sorted(patients) if "{patient_id}" in path else [None]:
                url = service_url(service) + path.replace("{patient_id}", str(patient))
                status = (await client.get(url, headers=auth)).status_code
                made[f"{service} {status}"] += 1
                if status >= 500:
                    findings.append(
                        {"problem": f"{service} answered {status}", "path": path, "patient_id": patient,
                         "agency": agency, "role": role}
                    )  # fmt: skip
    return dict(sorted(made.items()))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--examples", type=int, default=20, help="bodies drawn per event type")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sequences", type=int, default=20, help="patients whose events come in a drawn order")
    p.add_argument("--types", default="", help="comma-separated event types (default: every consumed type)")
    p.add_argument("--settle-timeout", type=float, default=180.0)
    p.add_argument("--out", default=".artifacts/fuzz-events")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = config_from_env(out)
    runtimes = shipped_runtimes()
    sent, records = prepare(args, cfg.prefix, event_flow(runtimes))
    summary = asyncio.run(run(args, cfg, runtimes, sent, records))
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str, ensure_ascii=True))
    for problem, n in Counter(f["problem"] for f in summary["findings"]).most_common():
        print(f"[event-fuzz] FINDING x{n}: {problem}")
    print(
        f"[event-fuzz] {summary['sent']} events ({summary['allowed']} of them ones careloop keeps),"
        f" {len(summary['findings'])} findings; {args.out}/summary.json"
    )
    return 1 if summary["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
