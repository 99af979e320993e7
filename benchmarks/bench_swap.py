"""Policy swap latency: from `publish --activate` returning to the first label under it.

A worker (in this process) follows a registry while events stream in at a
steady rate; the benchmark activates a new version of the hate policy again
and again and times, for each swap, how long until a committed label carrying
that version can be read. Reports p50 and max over the swaps.

    COPE_KAFKA_BOOTSTRAP=... .venv/bin/python benchmarks/bench_swap.py [--swaps 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from confluent_kafka import Consumer, Producer  # noqa: E402

from benchmarks.bench_runtime import _cpu_model  # noqa: E402
from policy_registry import library_policy  # noqa: E402
from policy_registry.store import RegistryReader, RegistryStore, ensure_registry_topic  # noqa: E402
from tests.kafka_support import isolated_settings  # noqa: E402
from worker.consumers.admin import ensure_topics  # noqa: E402
from worker.consumers.live import LiveWorker  # noqa: E402
from worker.model.runtime import load_classifier  # noqa: E402
from worker.policies import RegistryPolicies  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--swaps", type=int, default=10)
    parser.add_argument("--rate", type=float, default=4.0, help="events per second offered")
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    bootstrap = os.environ.get("COPE_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    prefix = f"swap{uuid.uuid4().hex[:8]}"
    settings = isolated_settings(
        bootstrap,
        prefix,
        args.model_dir,
        default_policy_ids=["hate"],
        batch_time_budget_s=1.0,
    )
    ensure_topics(settings, partitions=3)
    ensure_registry_topic(bootstrap, settings.registry_topic)
    store = RegistryStore(bootstrap, settings.registry_topic)
    hate = library_policy("hate")
    store.publish("hate", hate, author="bench", activate=True)
    classifier = load_classifier(settings)
    reader = RegistryReader(bootstrap, settings.registry_topic)
    reader.catch_up()
    reader.follow()
    model = classifier.model_ref()
    worker = LiveWorker(
        settings, classifier, model, RegistryPolicies(reader, classifier.tokenizer.encode_policy)
    )
    threading.Thread(target=worker.run, daemon=True).start()
    stop = threading.Event()

    def feed() -> None:
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        count = 0
        while not stop.is_set():
            producer.produce(
                settings.content_topic,
                key=f"e{count}".encode(),
                value=json.dumps({"id": f"e{count}", "text": f"post {count}"}),
            )
            producer.poll(0)
            count += 1
            time.sleep(1 / args.rate)
        producer.flush(10)

    threading.Thread(target=feed, daemon=True).start()
    labels = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "latest",
            "isolation.level": "read_committed",
        }
    )
    labels.subscribe([settings.labels_topic])
    settle_until = time.monotonic() + 10  # join, get assigned, let the worker settle in
    while time.monotonic() < settle_until:
        labels.consume(num_messages=500, timeout=0.2)
    latencies = []
    for swap in range(args.swaps):
        record = store.publish(
            "hate", f"{hate}\n<!-- revision {swap} -->", author="bench", activate=True
        )
        returned = time.monotonic()
        seen = False
        while not seen and time.monotonic() - returned < 60:
            for message in labels.consume(num_messages=100, timeout=0.1):
                if message.error() is not None:
                    continue
                result = json.loads(message.value())["results"][0]
                if result["policy_version"] == record.version:
                    latencies.append(time.monotonic() - returned)
                    seen = True
                    break
        print(f"swap {swap + 1}: {1000 * latencies[-1]:.0f} ms", file=sys.stderr)
        drain_until = time.monotonic() + 2
        while time.monotonic() < drain_until:
            labels.consume(num_messages=500, timeout=0.2)
    stop.set()
    worker.stop()
    labels.close()
    reader.close()
    store.close()
    report = {
        "benchmark": "policy_swap",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(), "gpu": None},
        "model": f"{classifier.manifest.name} {classifier.manifest.version}",
        "offered_events_per_s": args.rate,
        "swaps": len(latencies),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "max_ms": round(1000 * max(latencies), 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"swap-cpu-{datetime.now(UTC).strftime('%Y%m%d')}.json"
    target.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
