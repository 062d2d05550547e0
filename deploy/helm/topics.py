"""Write the chart's topic and ACL table from the code: ``deploy/helm/careloop/files/topics.json``.

Every event topic with the service that publishes it and the services that consume it, each service's
dead-letter topic and consumer group, and the topic settings the chart gives the Strimzi ``KafkaTopic``
and ``KafkaUser`` resources. Read from the services themselves (each ``main.build_app()``: its
``ServiceSpec.publishes`` and handlers), so a new event or subscription changes the chart.

    .venv/bin/python deploy/helm/topics.py           write the file
    .venv/bin/python deploy/helm/topics.py --check   exit 1 when the file is out of date
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from careloop_shared.settings import ServiceSettings
from careloop_shared.topology import TopologyError, event_flow, shipped_runtimes

TARGET = Path(__file__).resolve().parent / "careloop" / "files" / "topics.json"


KEPT_FOREVER = {"cleanup_policy": "delete", "retention": "forever"}


def table() -> dict[str, Any]:
    # Topic and group names as the code gives them, without this shell's test prefix or overrides.
    runtimes = shipped_runtimes()
    try:
        flow = event_flow(runtimes)
    except TopologyError as exc:
        raise SystemExit(str(exc)) from None
    producer, consumers = flow.producer, flow.consumers
    topics = [
        {
            "name": name,
            "producer": producer[name],
            "consumers": sorted(consumers.get(name, [])),
            # Every event is part of a patient's case record (record consumes them all), keyed by
            # patient id: deleting or compacting any of them would lose history the record replays.
            "cleanup_policy": "delete",
            "retention": "forever",
        }
        for name in sorted(producer)
    ]
    # Streams that carry no patient's event (record's signed checkpoints): kept forever, one writer.
    streams = [
        {"name": name, "producer": service, "consumers": []} | KEPT_FOREVER
        for service, runtime in runtimes.items()
        for name in runtime.spec.streams
    ]
    dead_letters = [
        {
            "name": runtime.dead_letter_topic,
            "producer": service,
            "consumers": [],
            # A dead letter is an event its consumer has moved past: kept until someone replays it.
            "cleanup_policy": "delete",
            "retention": "forever",
        }
        for service, runtime in runtimes.items()
        if runtime.spec.handlers
    ]
    services = {
        service: {
            "produces": sorted([*(e.type for e in runtime.spec.publishes), *runtime.spec.streams]),
            "consumes": sorted(e.type for e in runtime.spec.handlers),
            "dead_letter_topic": runtime.dead_letter_topic if runtime.spec.handlers else None,
            "consumer_group": runtime.settings.consumer_group,
        }
        for service, runtime in runtimes.items()
    }
    return {
        "generated_by": "deploy/helm/topics.py (do not edit; run it again)",
        "partitions": ServiceSettings.model_fields["topic_partitions"].default,
        "topics": topics,
        "dead_letter_topics": dead_letters,
        "streams": sorted(streams, key=lambda t: t["name"]),
        "services": services,
    }


def render() -> str:
    return json.dumps(table(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if argv == ["--check"]:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET} is out of date: run .venv/bin/python deploy/helm/topics.py", file=sys.stderr)
            return 1
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(text)
    print(f"wrote {TARGET} ({len(json.loads(text)['topics'])} event topics)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
