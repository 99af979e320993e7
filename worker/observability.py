"""Metrics, health endpoints and structured logs for operators.

One HTTP port serves ``/metrics`` (Prometheus), ``/healthz`` (the poll loop
has turned recently) and ``/readyz`` (model loaded and partitions assigned).
Each worker owns its own registry, so several can live in one process (tests).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from worker.settings import Settings

__all__ = ["Health", "Progress", "WorkerMetrics", "configure_logging", "serve_http"]

_LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)


class _CurrentStderr:
    """Whatever ``sys.stderr`` is at each write.

    structlog keeps the file it was configured with; a stream swapped out
    later (a test's capture, a daemon's redirect) would be written after it
    closed, killing the worker thread that logged.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "INFO") -> None:
    """JSON log lines on stderr; every record line carries its coordinates."""
    logging.basicConfig(stream=sys.stderr, level=level, format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )


class Progress:
    """A one-line ``label done/total`` counter for interactive long runs.

    Silent unless the stream is a terminal, so logs and CI output stay clean.
    """

    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.total, self.label, self.done = total, label, 0
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self.enabled:
            self.stream.write(f"\r{self.label} {self.done}/{self.total}")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


class WorkerMetrics:
    """The worker's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter("cope_events", "Content events handled", ["outcome"], registry=r)
        self.pairs = Counter("cope_pairs", "(policy, content) pairs scored", registry=r)
        self.batch_events = Histogram(
            "cope_batch_events",
            "Events per batch",
            registry=r,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
        )
        self.inference_seconds = Histogram(
            "cope_inference_seconds", "Model time per batch", registry=r, buckets=_LATENCY_BUCKETS
        )
        self.end_to_end_seconds = Histogram(
            "cope_end_to_end_seconds",
            "Event timestamp to label committed",
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )
        self.dead_letters = Counter(
            "cope_dead_letters", "Dead letters by reason", ["reason"], registry=r
        )
        self.transaction_aborts = Counter(
            "cope_transaction_aborts", "Aborted transactions", registry=r
        )
        self.consumer_lag = Gauge(
            "cope_consumer_lag",
            "Records behind the partition end",
            ["topic", "partition"],
            registry=r,
        )
        self.model_info = Gauge(
            "cope_model_info", "Model in use", ["name", "version", "sha256"], registry=r
        )
        self.registry_skipped = Counter(
            "cope_registry_records_skipped", "Registry records unreadable or unverified", registry=r
        )
        self.policy_info = Gauge(
            "cope_policy_info",
            "Active policy versions",
            ["policy_id", "version", "sha256"],
            registry=r,
        )


class Health:
    """Liveness (the loop turns) and readiness (model loaded, group joined).

    A member whose assignment is empty is still ready: with more workers than
    partitions it is the standby that takes over on failover, and holding it
    unready would stall a rolling deploy. Losing the assignment (session timed
    out) is different: the member is out of the group until it is assigned again.
    """

    def __init__(self, stall_after_s: float) -> None:
        self.stall_after_s = stall_after_s
        self._beat = time.monotonic()
        self.model_loaded = False
        self.caught_up = True  # false while the registry reader catches up at start
        self._joined = False
        self._partitions: set[tuple[str, int]] = set()
        self._lock = threading.Lock()

    def partitions_assigned(self, partitions: Iterable[tuple[str, int]]) -> None:
        """An (incremental) assignment arrived: the member is in the group."""
        with self._lock:
            self._partitions |= set(partitions)
            self._joined = True

    def partitions_revoked(self, partitions: Iterable[tuple[str, int]], *, lost: bool) -> None:
        """Partitions left this member; ``lost`` means it was dropped from the group."""
        with self._lock:
            self._partitions -= set(partitions)
            if lost:
                self._joined = False

    @property
    def assigned(self) -> frozenset[tuple[str, int]]:
        """The (topic, partition) pairs this member owns now."""
        with self._lock:
            return frozenset(self._partitions)

    def joined(self) -> bool:
        with self._lock:
            return self._joined

    @classmethod
    def for_settings(cls, settings: Settings) -> Health:
        """A loop stalls when it misses a few batch budgets (and never under a minute)."""
        return cls(stall_after_s=max(60.0, 3 * settings.batch_time_budget_s))

    def beat(self) -> None:
        with self._lock:
            self._beat = time.monotonic()

    def alive(self) -> bool:
        with self._lock:
            return time.monotonic() - self._beat < self.stall_after_s

    def ready(self) -> bool:
        return self.alive() and self.model_loaded and self.joined() and self.caught_up


def serve_http(port: int, metrics: WorkerMetrics, health: Health) -> ThreadingHTTPServer:
    """Start the metrics/health server on a daemon thread; port 0 picks a free one."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._reply(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                ok = health.alive()
                self._reply(200 if ok else 503, b"ok\n" if ok else b"stalled\n")
            elif self.path == "/readyz":
                ok = health.ready()
                self._reply(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
            else:
                self._reply(404, b"not found\n")

        def _reply(self, status: int, body: bytes, kind: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # scrapes every few seconds would drown the logs

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
