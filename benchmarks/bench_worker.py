"""End-to-end worker throughput and latency through a real Kafka broker.

In one run, on the same events and policies:
1. model only: the runtime scores every (policy, content) pair, no Kafka;
2. end to end: the events are already in a topic; a worker (in this process)
   consumes, scores, produces labels and commits transactions; events/s from
   its first consumed record to the last label committed;
3. latency: events published at a fixed rate below capacity; p50/p99 from the
   event's timestamp to its label being readable (read_committed);
4. replay: every event of the topic replayed to a file, events/s beside live's.

    COPE_KAFKA_BOOTSTRAP=... .venv/bin/python benchmarks/bench_worker.py [--events 96]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from confluent_kafka import Consumer, Producer  # noqa: E402

from benchmarks.bench_runtime import _cpu_model, realistic_contents  # noqa: E402
from tests.kafka_support import isolated_settings  # noqa: E402
from worker.consumers.admin import ensure_topics  # noqa: E402
from worker.consumers.live import LiveWorker  # noqa: E402
from worker.consumers.replay import replay_to_jsonl, resolve_range  # noqa: E402
from worker.model.runtime import load_classifier  # noqa: E402
from worker.policies import library_snapshot  # noqa: E402

POLICIES = ["hate", "violence"]


def _label_reader(bootstrap: str, topic: str) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    return consumer


def _wait_for_labels(consumer: Consumer, count: int, timeout_s: float) -> list[tuple[str, float]]:
    """(content id, time read) of `count` labels, or fewer at the timeout."""
    seen: list[tuple[str, float]] = []
    deadline = time.monotonic() + timeout_s
    while len(seen) < count and time.monotonic() < deadline:
        for message in consumer.consume(num_messages=500, timeout=0.2):
            if message.error() is None:
                seen.append((json.loads(message.value())["content_id"], time.time()))
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=96)
    parser.add_argument("--load", type=float, default=0.5, help="offered load / capacity")
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    bootstrap = os.environ.get("COPE_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    base = isolated_settings(bootstrap, prefix, args.model_dir, default_policy_ids=POLICIES)
    classifier = load_classifier(base)
    snapshot = library_snapshot(POLICIES, base.decision_threshold)
    contents = realistic_contents(classifier.tokenizer, args.events, seed=5)
    pairs = [(policy.text, text) for text in contents for policy in snapshot.policies.values()]

    classifier.predict(pairs[:4])  # warm-up
    began = time.perf_counter()
    classifier.predict(pairs)
    model_events_per_s = len(contents) / (time.perf_counter() - began)
    print(f"model only: {model_events_per_s:.2f} events/s", file=sys.stderr)

    ensure_topics(base, partitions=3)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i, text in enumerate(contents):
        producer.produce(
            base.content_topic,
            key=f"e{i}".encode(),
            value=json.dumps({"id": f"e{i}", "text": text}).encode(),
        )
    producer.flush(30)
    model = classifier.model_ref()
    worker = LiveWorker(base, classifier, model, lambda: snapshot)
    reader = _label_reader(bootstrap, base.labels_topic)
    thread = threading.Thread(target=worker.run, daemon=True)
    began = time.perf_counter()
    thread.start()
    labelled = _wait_for_labels(reader, len(contents), timeout_s=600)
    end_to_end_events_per_s = len(labelled) / (time.perf_counter() - began)
    print(f"end to end: {end_to_end_events_per_s:.2f} events/s", file=sys.stderr)

    rate = args.load * model_events_per_s
    sent: dict[str, float] = {}
    total = int(rate * args.latency_seconds)
    arrivals: list[tuple[str, float]] = []
    watcher = threading.Thread(  # labels are read while events are still being sent
        target=lambda: arrivals.extend(_wait_for_labels(reader, total, timeout_s=300)),
        daemon=True,
    )
    watcher.start()
    for i in range(total):
        content_id = f"l{i}"
        sent[content_id] = time.time()
        producer.produce(
            base.content_topic,
            key=content_id.encode(),
            value=json.dumps({"id": content_id, "text": contents[i % len(contents)]}),
        )
        producer.poll(0)
        time.sleep(max(0.0, sent[content_id] + 1 / rate - time.time()))
    producer.flush(30)
    watcher.join(330)
    worker.stop()
    thread.join(60)
    reader.close()

    # 4. replay: every event of the topic again, under the same policies, to a JSONL file
    window = resolve_range(base, None, None)
    with tempfile.TemporaryDirectory() as scratch:
        manifest = replay_to_jsonl(
            base,
            window,
            classifier,
            classifier.model_ref(),
            lambda _: snapshot,
            Path(scratch) / "replay.jsonl",
            {},
        )
    replay_events_per_s = manifest["counts"]["events"] / manifest["seconds"]
    print(f"replay: {replay_events_per_s:.2f} events/s", file=sys.stderr)
    latencies = sorted(at - sent[cid] for cid, at in arrivals if cid in sent)
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    report = {
        "benchmark": "worker",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(), "gpu": None},
        "model": f"{classifier.manifest.name} {classifier.manifest.version} ({classifier.variant})",
        "events": len(contents),
        "policies_per_event": len(POLICIES),
        "model_only_events_per_s": round(model_events_per_s, 2),
        "end_to_end_events_per_s": round(end_to_end_events_per_s, 2),
        "end_to_end_over_model_only": round(end_to_end_events_per_s / model_events_per_s, 3),
        "latency_offered_events_per_s": round(rate, 2),
        "latency_events": len(latencies),
        "latency_p50_ms": round(1000 * p50, 1),
        "latency_p99_ms": round(1000 * p99, 1),
        "replay_events": manifest["counts"]["events"],
        "replay_events_per_s": round(replay_events_per_s, 2),
        "replay_over_end_to_end": round(replay_events_per_s / end_to_end_events_per_s, 3),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"worker-cpu-{datetime.now(UTC).strftime('%Y%m%d')}.json"
    target.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
