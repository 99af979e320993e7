"""The live worker against a real Kafka broker: exactly-once labels and dead letters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)
from prometheus_client.samples import Sample

from tests.kafka_support import (
    create_worker_topics,
    isolated_settings,
    produce,
    read_committed,
    unique_prefix,
)
from worker.consumers.live import TRANSACTION_ATTEMPTS, LiveWorker, _retrying
from worker.model.runtime import load_classifier
from worker.policies import library_snapshot
from worker.settings import Settings

POLICIES = ["hate", "violence"]


def _settings(bootstrap: str, prefix: str, model_dir: Path, **extra: object) -> Settings:
    return isolated_settings(
        bootstrap,
        prefix,
        model_dir,
        default_policy_ids=POLICIES,
        max_text_chars=2000,
        batch_max_wait_ms=100,
        **extra,
    )


def _topics(bootstrap: str, prefix: str) -> None:
    create_worker_topics(_settings(bootstrap, prefix, Path()))


def _event(content_id: str, text: str = "an ordinary sentence", **fields: object) -> bytes:
    return json.dumps({"id": content_id, "text": text, **fields}).encode()


def _lag_samples(worker: LiveWorker) -> list[Sample]:
    return [sample for family in worker.metrics.consumer_lag.collect() for sample in family.samples]


class RunningWorker:
    """A LiveWorker on a thread, stopped (and joined) on exit."""

    def __init__(self, settings: Settings) -> None:
        classifier = load_classifier(settings)
        model = classifier.model_ref()
        snapshot = library_snapshot(settings.default_policy_ids, settings.decision_threshold)
        self.worker = LiveWorker(settings, classifier, model, lambda: snapshot)
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def __enter__(self) -> LiveWorker:
        def run() -> None:
            try:
                self.worker.run()
            except BaseException as exc:  # surfaced by __exit__
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        return self.worker

    def __exit__(self, *exc: object) -> None:
        assert self.thread is not None
        self.worker.stop()
        self.thread.join(60)
        assert not self.thread.is_alive(), "worker did not stop"
        if self.error is not None:
            raise self.error


def test_every_event_gets_exactly_one_label_and_bad_input_goes_to_the_dlq(
    kafka_bootstrap: str, worker_model_dir: Path
) -> None:
    prefix = unique_prefix()
    _topics(kafka_bootstrap, prefix)
    good: list[tuple[bytes, bytes | None]] = [
        (f"c{i}".encode(), _event(f"c{i}", metadata={"n": i})) for i in range(30)
    ]
    bad = [
        (b"b1", b"{not json"),
        (b"b2", b"\xff\xfe not utf-8"),
        (b"b3", json.dumps({"text": "no id"}).encode()),
        (b"b4", _event("b4", text="x" * 5000)),
        (b"b5", _event("b5", policy_ids=["no-such-policy"])),
        (b"b6", None),
    ]
    produce(kafka_bootstrap, f"{prefix}.events", good[:15] + bad + good[15:])
    settings = _settings(kafka_bootstrap, prefix, worker_model_dir)
    with RunningWorker(settings) as worker:
        labels = read_committed(kafka_bootstrap, f"{prefix}.labels", expected=len(good))
        letters = read_committed(kafka_bootstrap, f"{prefix}.dlq", expected=len(bad))
        assert worker.health.ready()
        deadline = time.monotonic() + 10
        while not (lags := _lag_samples(worker)) and time.monotonic() < deadline:
            time.sleep(0.1)  # recorded just after the batch's commit
        assert lags
        assert all(sample.value >= 0 for sample in lags)
    assert not _lag_samples(worker)  # leaving the group drops this member's partitions
    counts = Counter(key for key, _ in labels)
    assert counts == Counter(key for key, _ in good)  # each exactly once
    record = json.loads(labels[0][1])
    assert [result["policy_id"] for result in record["results"]] == POLICIES
    assert all(
        result["policy_version"] == 1 and len(result["policy_sha256"]) == 64
        for result in record["results"]
    )
    assert record["model"]["name"] == "tiny-512"
    assert len(record["model"]["manifest_sha256"]) == 64
    assert record["model"]["window_stride"] == 64
    assert record["source"]["topic"] == f"{prefix}.events"
    assert record["metadata"]["n"] == int(record["content_id"][1:])
    reasons = {key: json.loads(value)["reason"] for key, value in letters}
    assert reasons == {
        b"b1": "bad_json",
        b"b2": "bad_utf8",
        b"b3": "invalid_event",
        b"b4": "oversized_text",
        b"b5": "unknown_policy",
        b"b6": "invalid_event",
    }
    letter = json.loads(dict(letters)[b"b2"])
    assert letter["original_value_b64"] == "//4gbm90IHV0Zi04"  # the original bytes, intact
    assert letter["source"]["offset"] >= 0
    registry = worker.metrics.registry
    assert registry.get_sample_value("cope_dead_letters_total", {"reason": "bad_json"}) == 1
    assert registry.get_sample_value("cope_events_total", {"outcome": "labelled"}) == len(good)
    assert registry.get_sample_value("cope_pairs_total") == len(good) * len(POLICIES)


def _limit_record_size(bootstrap: str, topic: str, max_bytes: int) -> None:
    """Set a topic's ``max.message.bytes`` on the broker, as an operator would."""
    entry = ConfigEntry(
        "max.message.bytes", str(max_bytes), incremental_operation=AlterConfigOpType.SET
    )
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)


def test_an_aborted_transaction_is_retried_and_loses_and_duplicates_nothing(
    kafka_bootstrap: str, worker_model_dir: Path
) -> None:
    prefix = unique_prefix()
    _topics(kafka_bootstrap, prefix)
    labels_topic = f"{prefix}.labels"
    # No label record fits; the transaction markers (about 80 bytes) still do, or
    # the coordinator could never finish an abort and every later call would wait.
    _limit_record_size(kafka_bootstrap, labels_topic, 160)
    events = [(f"a{i}".encode(), _event(f"a{i}")) for i in range(12)]
    produce(kafka_bootstrap, f"{prefix}.events", events)
    # a refused record fails the transaction only when it times out: keep that short
    settings = _settings(kafka_bootstrap, prefix, worker_model_dir, transaction_timeout_ms=8000)
    with RunningWorker(settings) as worker:
        registry = worker.metrics.registry
        deadline = time.monotonic() + 60
        while not registry.get_sample_value("cope_transaction_aborts_total"):
            assert time.monotonic() < deadline, "no transaction was aborted"
            time.sleep(0.2)
        assert read_committed(kafka_bootstrap, labels_topic, expected=1, timeout_s=1) == []
        _limit_record_size(kafka_bootstrap, labels_topic, 1_000_000)
        labels = read_committed(kafka_bootstrap, labels_topic, expected=len(events))
        assert registry.get_sample_value("cope_events_total", {"outcome": "labelled"}) == len(
            events
        )  # counted once, on the commit that stuck
    assert Counter(key for key, _ in labels) == Counter(key for key, _ in events)


def _failing(after: int, **kind: bool) -> tuple[list[int], Callable[[], None]]:
    """A transaction call that raises a KafkaError of ``kind`` for its first ``after`` calls."""
    calls: list[int] = []

    def call() -> None:
        calls.append(1)
        if len(calls) <= after:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "slow coordinator", **kind))

    return calls, call


def test_only_retriable_transaction_errors_are_retried_and_not_forever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pauses: list[float] = []
    monkeypatch.setattr("worker.consumers.live.time.sleep", pauses.append)
    calls, call = _failing(2, retriable=True)
    _retrying(call)
    assert len(calls) == 3
    assert pauses == sorted(pauses)  # backs off
    for kind in ({}, {"retriable": True, "txn_requires_abort": True}, {"fatal": True}):
        calls, call = _failing(1, **kind)
        with pytest.raises(KafkaException):
            _retrying(call)
        assert len(calls) == 1, kind  # the caller aborts, or the worker stops
    calls, call = _failing(100, retriable=True)
    with pytest.raises(KafkaException):
        _retrying(call)
    assert len(calls) == TRANSACTION_ATTEMPTS


def test_two_workers_share_the_partitions_and_a_rebalance_loses_nothing(
    kafka_bootstrap: str, worker_model_dir: Path
) -> None:
    prefix = unique_prefix()
    _topics(kafka_bootstrap, prefix)
    events = [(f"e{i}".encode(), _event(f"e{i}")) for i in range(60)]
    produce(kafka_bootstrap, f"{prefix}.events", events[:30])
    first = _settings(kafka_bootstrap, prefix, worker_model_dir, transactional_id=f"{prefix}-a")
    second = _settings(kafka_bootstrap, prefix, worker_model_dir, transactional_id=f"{prefix}-b")
    every_partition = {(f"{prefix}.events", p) for p in range(3)}
    with RunningWorker(first) as original:
        read_committed(kafka_bootstrap, f"{prefix}.labels", expected=10, settle_s=0)
        assert original.health.assigned == every_partition
        with RunningWorker(second) as joined:
            produce(kafka_bootstrap, f"{prefix}.events", events[30:])
            labels = read_committed(kafka_bootstrap, f"{prefix}.labels", expected=len(events))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (
                joined.health.assigned
                and original.health.assigned | joined.health.assigned == every_partition
                and not original.health.assigned & joined.health.assigned
            ):
                time.sleep(0.2)
            assert joined.health.assigned, "the second worker never got a partition"
            assert not original.health.assigned & joined.health.assigned
            assert original.health.assigned | joined.health.assigned == every_partition
            assert joined.health.ready()
            reported = {
                (s.labels["topic"], int(s.labels["partition"])) for s in _lag_samples(original)
            }
            assert reported <= original.health.assigned  # no stale lag for moved partitions
    assert Counter(key for key, _ in labels) == Counter(key for key, _ in events)


def test_sigterm_mid_stream_loses_and_duplicates_nothing(
    kafka_bootstrap: str, worker_model_dir: Path
) -> None:
    prefix = unique_prefix()
    _topics(kafka_bootstrap, prefix)
    events = [(f"s{i}".encode(), _event(f"s{i}")) for i in range(150)]
    env = {
        **os.environ,
        "COPE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "COPE_CONTENT_TOPIC": f"{prefix}.events",
        "COPE_LABELS_TOPIC": f"{prefix}.labels",
        "COPE_DLQ_TOPIC": f"{prefix}.dlq",
        "COPE_GROUP_ID": f"{prefix}-group",
        "COPE_TRANSACTIONAL_ID": f"{prefix}-tx",
        "COPE_MODEL_DIR": str(worker_model_dir),
        "COPE_PROVIDER": "cpu",
        "COPE_DEFAULT_POLICY_IDS": json.dumps(POLICIES),
        "COPE_POLICY_SOURCE": "library",
        "COPE_BATCH_MAX_EVENTS": "4",
        "COPE_METRICS_PORT": "0",
    }
    command = [sys.executable, "-m", "worker.cli", "worker", "run"]
    produced = threading.Event()

    def trickle() -> None:  # a live stream: events keep coming while the worker stops
        for start in range(20, len(events), 5):
            produce(kafka_bootstrap, f"{prefix}.events", events[start : start + 5])
            time.sleep(0.05)
        produced.set()

    produce(kafka_bootstrap, f"{prefix}.events", events[:20])
    worker = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    read_committed(kafka_bootstrap, f"{prefix}.labels", expected=8, settle_s=0)
    feeder = threading.Thread(target=trickle, daemon=True)
    feeder.start()
    time.sleep(0.2)
    worker.send_signal(signal.SIGTERM)
    stopped_mid_stream = not produced.is_set()
    _, log = worker.communicate(timeout=60)
    assert worker.returncode == 0, log[-2000:]
    assert '"worker_stopped"' in log
    assert stopped_mid_stream
    restarted = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    try:
        feeder.join(60)
        labels = read_committed(kafka_bootstrap, f"{prefix}.labels", expected=len(events))
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(60)
    assert Counter(key for key, _ in labels) == Counter(key for key, _ in events)


def test_the_demo_client_publishes_events_and_shows_each_label(
    kafka_bootstrap: str, worker_model_dir: Path, tmp_path: Path
) -> None:
    import io

    from worker.consumers.demo import feed_and_watch

    prefix = unique_prefix()
    _topics(kafka_bootstrap, prefix)
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(json.dumps({"id": f"d{i}", "text": f"sample {i}"}) + "\n" for i in range(5))
        + json.dumps({"id": "d-bad", "text": "x", "policy_ids": ["nope"]})
        + "\n"
    )
    shown = io.StringIO()
    with RunningWorker(_settings(kafka_bootstrap, prefix, worker_model_dir)):
        count = feed_and_watch(
            _settings(kafka_bootstrap, prefix, worker_model_dir), [events], timeout_s=60, out=shown
        )
    assert count == 5
    lines = shown.getvalue().splitlines()
    assert lines[0].startswith("published 6 events")
    assert sum(line.startswith("d") and "hate=" in line for line in lines) == 5
    assert any("dead letter: unknown_policy" in line for line in lines)
