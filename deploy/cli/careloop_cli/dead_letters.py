"""``careloop dlq list`` / ``careloop dlq redrive``: what a service's consumer set aside on its
dead-letter topic (``careloop.<service>.dlq``), listed for an operator, and sent again once its cause is
fixed (a bug fixed in a new version, data corrected).

``list`` reads the dead-letter topic from the beginning (no consumer group, nothing committed) and prints
each entry: where it is (``partition:offset``), when, where it came from, the event's type and id, and
why (the consumer's ``dlq_*`` headers). It prints no event data.

``redrive`` takes entries by ``partition:offset`` (or ``--all``, narrowed by ``--error-type``) and, for
each: removes the consumer's mark that it dead-lettered the event from the service's inbox (``--dsn``,
the service's own database), so that the event, delivered again, is not skipped; then publishes the
original record (its key, value and own headers) again to the topic it came from, with a
``careloop_redriven_from`` header naming the dead letter. The mark goes first, so the record can never
arrive while it is still there. Every consumer of that topic receives the record again: those that applied
it skip it (their inbox), and the one that set it aside tries it again, and dead-letters it anew if its
cause remains. A dead letter sent again stays on the dead-letter topic; sending it twice is harmless. A
patient's events that came after it were applied meanwhile: the record comes after them now.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from rich.console import Console

from careloop_cli.replay import read_to_end
from careloop_shared.kafka import Kafka, client_options, connection, topic_partitions
from careloop_shared.settings import KafkaSettings
from careloop_shared.topology import EVENT_SERVICES

REDRIVEN_FROM = "careloop_redriven_from"
_UNMARK = "DELETE FROM inbox WHERE consumer = $1 AND event_id = $2 AND outcome = 'dead-lettered'"

console = Console()


@dataclass(frozen=True)
class DeadLetter:
    """One record of a dead-letter topic, as the consumer wrote it."""

    topic: str
    partition: int
    offset: int
    at: datetime
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> str | None:
        found = next((v for k, v in self.headers if k == name), None)
        return None if found is None else found.decode(errors="replace")

    @property
    def where(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def event_id(self) -> uuid.UUID | None:
        """The dead-lettered event's CloudEvents id, when it had one that is an id."""
        try:
            return uuid.UUID(self.header("ce_id") or "")
        except ValueError:
            return None

    def original(self) -> tuple[str, list[tuple[str, bytes]]] | None:
        """The topic it came from and its own headers (the consumer's ``dlq_*`` ones left out, and
        which dead letter it is added); None for a record that does not say where it came from."""
        topic = self.header("dlq_original_topic")
        if not topic:
            return None
        kept = [(k, v) for k, v in self.headers if not k.startswith("dlq_") and k != REDRIVEN_FROM]
        return topic, [*kept, (REDRIVEN_FROM, f"{self.topic}:{self.where}".encode())]


def _when(timestamp_ms: int) -> datetime:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC)


def dead_letter_topic(service: str, prefix: str = "") -> str:
    return f"{prefix}careloop.{service}.dlq"


async def read(kafka: Kafka, topic: str, *, timeout_s: float = 60) -> list[DeadLetter]:
    """Every record of the topic, up to the ends seen at start, oldest first; none if it does not exist."""
    partitions = await topic_partitions(kafka, [topic])
    if not partitions:
        return []
    found = [
        DeadLetter(r.topic, r.partition, r.offset, _when(r.timestamp), r.key, r.value, tuple(r.headers))
        async for records in read_to_end(kafka, partitions, timeout_s=timeout_s)
        for r in records
    ]
    return sorted(found, key=lambda d: (d.at, d.partition, d.offset))


def chosen(
    letters: Sequence[DeadLetter], where: Iterable[str], *, error_type: str | None = None
) -> list[DeadLetter]:
    """The entries named by ``partition:offset`` (all when none are named), of one error type if given.
    Raises ValueError naming an entry the topic does not hold."""
    named = list(dict.fromkeys(where))
    by_place = {d.where: d for d in letters}
    unknown = [w for w in named if w not in by_place]
    if unknown:
        raise ValueError(
            f"no dead letter at {', '.join(unknown)} (partition:offset, as `careloop dlq list` prints)"
        )
    picked = [by_place[w] for w in named] if named else list(letters)
    return [d for d in picked if error_type is None or d.header("dlq_error_type") == error_type]


async def redrive(kafka: Kafka, dsn: str, letters: Sequence[DeadLetter]) -> list[tuple[DeadLetter, str]]:
    """Each dead letter's inbox mark removed, then its record published again where it came from; what
    became of each: ``sent again`` or why not."""
    done: list[tuple[DeadLetter, str]] = []
    conn = await asyncpg.connect(dsn)
    producer = AIOKafkaProducer(**connection(kafka), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for letter in letters:
            original = letter.original()
            if original is None:
                done.append((letter, "not sent: it does not say which topic it came from"))
                continue
            consumer, event_id = letter.header("dlq_consumer"), letter.event_id
            if consumer and event_id is not None:
                await conn.execute(_UNMARK, consumer, event_id)
            topic, headers = original
            await producer.send_and_wait(topic, letter.value, key=letter.key, headers=headers)
            done.append((letter, f"sent again to {topic}"))
    finally:
        await producer.stop()
        await conn.close()
    return done


def _show(letters: Sequence[DeadLetter], outcomes: dict[str, str] | None = None) -> None:
    """Each entry as a few lines, whole (a table cuts what a terminal cannot fit); as text, never as
    markup, since a reason may hold brackets."""
    for d in letters:
        source = f"{d.header('dlq_original_topic')} {d.header('dlq_original_partition')}"
        source += f":{d.header('dlq_original_offset')}"
        lines = [
            f"{d.where}  dead-lettered {d.at.isoformat(timespec='seconds')}, from {source}",
            f"    event {d.header('ce_type') or '(no type)'} {d.event_id or '(no id)'}",
            f"    why   {d.header('dlq_error_type')}: {d.header('dlq_error') or ''}",
        ]
        if outcomes is not None:
            lines.append(f"    done  {outcomes[d.where]}")
        console.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)


def _kafka(args: argparse.Namespace) -> Kafka:
    """TLS and SASL from the same CARELOOP_KAFKA_* variables the services read."""
    return client_options(KafkaSettings(kafka_bootstrap_servers=args.bootstrap))


def cmd_list(args: argparse.Namespace) -> int:
    letters = asyncio.run(read(_kafka(args), dead_letter_topic(args.service, args.topic_prefix)))
    letters = chosen(letters, [], error_type=args.error_type)
    _show(letters)
    console.print(f"{len(letters)} dead letter(s) on {dead_letter_topic(args.service, args.topic_prefix)}")
    return 0


def cmd_redrive(args: argparse.Namespace) -> int:
    if not args.entry and not args.all:
        console.print(
            "[red]name the entries (--entry PARTITION:OFFSET, as `careloop dlq list` prints) or --all[/red]"
        )
        return 2
    topic = dead_letter_topic(args.service, args.topic_prefix)
    try:
        letters = chosen(asyncio.run(read(_kafka(args), topic)), args.entry or [], error_type=args.error_type)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    if args.dry_run:
        _show(letters)
        console.print(f"would send {len(letters)} dead letter(s) again (--dry-run: nothing changed)")
        return 0
    outcomes = asyncio.run(redrive(_kafka(args), args.dsn, letters))
    _show(letters, {d.where: said for d, said in outcomes})
    sent = sum(said.startswith("sent again") for _, said in outcomes)
    console.print(f"sent {sent} of {len(letters)} dead letter(s) again")
    return 0 if sent == len(letters) else 1


def add_parser(sub: Any) -> None:
    dlq = sub.add_parser("dlq", help="a service's dead letters: list them, send them again")
    actions = dlq.add_subparsers(dest="dlq_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--service", required=True, choices=EVENT_SERVICES)
    common.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    common.add_argument("--topic-prefix", default=os.environ.get("CARELOOP_TOPIC_PREFIX", ""))
    common.add_argument("--error-type", help="only dead letters of this dlq_error_type")
    p = actions.add_parser("list", parents=[common], help="every dead letter, oldest first, and why")
    p.set_defaults(run=cmd_list)
    p = actions.add_parser(
        "redrive", parents=[common], help="send dead letters again to the topic they came from"
    )
    p.add_argument(
        "--dsn", required=True, help="the service's own database (its inbox holds the dead-letter marks)"
    )
    p.add_argument("--entry", action="append", metavar="PARTITION:OFFSET", help="one entry; repeat for more")
    p.add_argument("--all", action="store_true", help="every entry (narrowed by --error-type)")
    p.add_argument("--dry-run", action="store_true", help="say what would be sent, send nothing")
    p.set_defaults(run=cmd_redrive)
