"""The live loop: consume a batch, score it, produce labels, commit, in one transaction.

Exactly-once consume-transform-produce: labels, dead letters and the consumed
offsets go into one Kafka transaction, so a batch is either wholly labelled
and committed or not at all (and is read again). Nothing is held across
``consume()``, so a partition revoked during a rebalance never has work in
flight. A signal only sets a flag; the batch in hand is finished and committed
before the worker leaves its group.

Batch size adapts to measured throughput: the next batch holds at most as
many events as the model scored in ``batch_time_budget_s`` recently, which
keeps every transaction well inside ``transaction.timeout.ms`` and
``max.poll.interval.ms`` even on a slow CPU.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from worker.consumers.kafka import consumer_config, producer_config
from worker.model.runtime import Classifier
from worker.observability import Health, WorkerMetrics
from worker.pipeline import BatchOutcome, RawRecord, process_batch
from worker.policies import PolicySnapshot
from worker.schemas import ModelRef
from worker.settings import Settings

__all__ = ["LiveWorker"]

log = structlog.get_logger("cope.worker")

TRANSACTION_ATTEMPTS = 5


class BatchSizer:
    """Events per batch such that a batch's work fits the time budget.

    It tracks seconds of work per event (an exponential average), so events
    naming more policies, shadow versions or longer texts shrink the batch.
    """

    def __init__(self, ceiling: int, budget_s: float) -> None:
        self.ceiling = ceiling
        self.budget_s = budget_s
        self.seconds_per_event: float | None = None

    def observe(self, events: int, seconds: float) -> None:
        if events == 0 or seconds <= 0:
            return
        cost = seconds / events
        previous = self.seconds_per_event
        self.seconds_per_event = cost if previous is None else 0.7 * previous + 0.3 * cost

    def next_size(self) -> int:
        if self.seconds_per_event is None:
            return min(self.ceiling, 4)  # a small first batch measures the machine
        return max(1, min(self.ceiling, int(self.budget_s / self.seconds_per_event)))


class LiveWorker:
    """One worker process: a group member with a transactional producer."""

    def __init__(
        self,
        settings: Settings,
        classifier: Classifier,
        model: ModelRef,
        snapshot: Callable[[], PolicySnapshot],
        metrics: WorkerMetrics | None = None,
        health: Health | None = None,
    ) -> None:
        self.settings = settings
        self.classifier = classifier
        self.model = model
        self.snapshot = snapshot
        self.metrics = metrics or WorkerMetrics()
        self.health = health or Health.for_settings(settings)
        self.health.model_loaded = True
        self._stop = threading.Event()
        self.sizer = BatchSizer(settings.batch_max_events, settings.batch_time_budget_s)
        self.metrics.model_info.labels(model.name, model.version, model.sha256).set(1)

    def stop(self) -> None:
        """Ask the loop to finish the batch in hand, commit and leave (signal-safe)."""
        self._stop.set()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        owned = [(p.topic, p.partition) for p in partitions]
        self.health.partitions_assigned(owned)
        log.info("partitions_assigned", partitions=owned)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Nothing is in flight here: every batch is committed before consume() runs again.
        log.info("partitions_revoked", partitions=self._release(partitions, lost=False))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # The session timed out: another member may own these partitions already.
        log.warning("partitions_lost", partitions=self._release(partitions, lost=True))

    def _release(self, partitions: list[TopicPartition], *, lost: bool) -> list[tuple[str, int]]:
        """Forget partitions, and their lag, so metrics summed across workers stay true."""
        released = [(p.topic, p.partition) for p in partitions]
        self.health.partitions_revoked(released, lost=lost)
        for topic, partition in released:
            with contextlib.suppress(KeyError):
                self.metrics.consumer_lag.remove(topic, str(partition))
        return released

    def run(self) -> None:
        """Consume, label and commit until stopped."""
        consumer = Consumer(consumer_config(self.settings))
        producer = Producer(producer_config(self.settings))
        try:
            producer.init_transactions(self.settings.transaction_timeout_ms / 1000)
            consumer.subscribe(
                [self.settings.content_topic],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            log.info(
                "worker_started",
                topic=self.settings.content_topic,
                group=self.settings.group_id,
                transactional_id=self.settings.transactional_id,
            )
            while not self._stop.is_set():
                self.health.beat()
                messages = consumer.consume(
                    num_messages=self.sizer.next_size(),
                    timeout=self.settings.batch_max_wait_ms / 1000,
                )
                records = self._records(messages)
                if records:
                    self._transact(consumer, producer, records)
                    self._record_lag(consumer)
        finally:
            consumer.close()  # leaves the group at once, so partitions move without delay
            producer.flush(10)
            log.info("worker_stopped")

    def _records(self, messages: Sequence[Message]) -> list[RawRecord]:
        now = time.monotonic()
        records = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                log.warning("consume_error", error=str(error))
                continue
            _, timestamp = message.timestamp()
            records.append(
                RawRecord(
                    topic=message.topic() or "",
                    partition=message.partition() or 0,
                    offset=message.offset() or 0,
                    timestamp_ms=timestamp if timestamp > 0 else None,
                    key=message.key(),
                    value=message.value(),
                    received_at=now,
                )
            )
        return records

    def _transact(self, consumer: Consumer, producer: Producer, records: list[RawRecord]) -> None:
        snapshot = self.snapshot()
        began = time.monotonic()
        outcome = process_batch(
            records,
            snapshot,
            self.classifier,
            self.model,
            default_policy_ids=self.settings.default_policy_ids,
            max_text_chars=self.settings.max_text_chars,
        )
        inference_s = time.monotonic() - began
        timeout_s = self.settings.transaction_timeout_ms / 1000
        try:
            producer.begin_transaction()
            self._produce(producer, outcome)
            _retrying(
                lambda: producer.send_offsets_to_transaction(
                    _next_offsets(records), consumer.consumer_group_metadata(), timeout_s
                )
            )
            _retrying(lambda: producer.commit_transaction(timeout_s))
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if not error.txn_requires_abort():
                raise
            self.metrics.transaction_aborts.inc()
            log.warning("transaction_aborted", error=str(error), events=len(records))
            _retrying(lambda: producer.abort_transaction(timeout_s))
            _rewind(consumer, records)
            return
        self._account(records, outcome, inference_s, snapshot)

    def _record_lag(self, consumer: Consumer) -> None:
        """Records between each assigned partition's position and its end."""
        for position in consumer.position(consumer.assignment()):
            if position.offset < 0:
                continue  # nothing consumed from it yet
            _, high = consumer.get_watermark_offsets(position, cached=True)
            lag = max(0, high - position.offset) if high >= 0 else 0
            self.metrics.consumer_lag.labels(position.topic, str(position.partition)).set(lag)

    def _produce(self, producer: Producer, outcome: BatchOutcome) -> None:
        for label_key, label in outcome.labels:
            _produce_one(producer, self.settings.labels_topic, label_key, label)
        for shadow_key, shadow in outcome.shadow_labels:
            _produce_one(producer, self.settings.shadow_labels_topic, shadow_key, shadow)
        for letter_key, letter in outcome.dead_letters:
            _produce_one(producer, self.settings.dlq_topic, letter_key, letter)

    def _account(
        self,
        records: list[RawRecord],
        outcome: BatchOutcome,
        inference_s: float,
        snapshot: PolicySnapshot,
    ) -> None:
        metrics = self.metrics
        self.sizer.observe(len(records), inference_s)
        metrics.batch_events.observe(len(records))
        metrics.inference_seconds.observe(inference_s)
        metrics.pairs.inc(outcome.pairs)
        metrics.events.labels("labelled").inc(len(outcome.labels))
        metrics.events.labels("dead_lettered").inc(len(outcome.dead_letters))
        for source, reason, content_id in outcome.rejections:
            metrics.dead_letters.labels(reason).inc()
            log.warning(
                "dead_letter",
                content_id=content_id,
                topic=source.topic,
                partition=source.partition,
                offset=source.offset,
                reason=reason,
            )
        now_ms = time.time() * 1000
        for record in records:
            if record.timestamp_ms is not None:
                metrics.end_to_end_seconds.observe(max(0.0, now_ms - record.timestamp_ms) / 1000)
        for policy in snapshot.policies.values():
            metrics.policy_info.labels(policy.policy_id, str(policy.version), policy.sha256).set(1)
        log.info(
            "batch_committed",
            events=len(records),
            labels=len(outcome.labels),
            dead_letters=len(outcome.dead_letters),
            pairs=outcome.pairs,
            inference_s=round(inference_s, 3),
            next_batch=self.sizer.next_size(),
        )


def _produce_one(producer: Producer, topic: str, key: bytes | None, value: bytes) -> None:
    while True:
        try:
            producer.produce(topic, value=value, key=key)
            return
        except BufferError:  # local queue full: let deliveries drain, then retry
            producer.poll(0.1)


def _next_offsets(records: Sequence[RawRecord]) -> list[TopicPartition]:
    """Per partition, the offset after the last record consumed."""
    highest: dict[tuple[str, int], int] = defaultdict(lambda: -1)
    for record in records:
        key = (record.topic, record.partition)
        highest[key] = max(highest[key], record.offset)
    return [
        TopicPartition(topic, partition, offset + 1)
        for (topic, partition), offset in sorted(highest.items())
    ]


def _retrying(call: Callable[[], None], attempts: int = TRANSACTION_ATTEMPTS) -> None:
    """A transaction call, again while librdkafka says the error is retriable.

    A coordinator busy with an earlier operation (``CONCURRENT_TRANSACTIONS``,
    seen after a refused label record) or a timeout leaves the transaction
    intact, and the same call may be made again; abortable and fatal errors
    go to the caller at once.
    """
    for attempt in range(attempts):
        try:
            call()
            return
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if not error.retriable() or error.txn_requires_abort() or attempt == attempts - 1:
                raise
            log.info("transaction_call_retried", error=str(error), attempt=attempt + 1)
            time.sleep(min(2.0, 0.1 * 2**attempt))


def _rewind(consumer: Consumer, records: Sequence[RawRecord]) -> None:
    """Seek each partition back to the batch's first record, to read it again."""
    first: dict[tuple[str, int], int] = {}
    for record in records:
        key = (record.topic, record.partition)
        first[key] = min(first.get(key, record.offset), record.offset)
    for (topic, partition), offset in first.items():
        try:
            consumer.seek(TopicPartition(topic, partition, offset))
        except KafkaException as exc:  # partition no longer ours: its new owner re-reads it
            log.info("rewind_skipped", topic=topic, partition=partition, error=str(exc))
