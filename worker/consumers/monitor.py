"""The rollout monitor as a faust-streaming app: live and shadow labels in, views out.

A process of its own (``cope monitor``), so nothing here touches the worker's
hot path. One agent reads both label topics and feeds the pure
:class:`~worker.monitor.RolloutMonitor`; faust's web server serves ``/rates``
(JSON) and ``/metrics`` (Prometheus); a timer closes finished windows and
logs their alerts.

- At-least-once, faust's default: its exactly-once mode has open bugs and the
  app only counts (the counter ignores a label read twice within a window).
- No faust tables and no leader topic, so faust needs no topic of its own on
  a broker that does not auto-create topics; the counts live in the agent's
  process (see ``worker.monitor``). The label topics are created up front with
  :func:`ensure_topics`: faust crash-loops on a missing or mismatched topic.
- Each run is its own consumer group (nothing to resume: the state is in
  memory) and starts at the topics' ends, or at their beginnings on request;
  faust's data folder is a temporary one, removed on exit.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import faust
import structlog
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from worker.consumers.admin import ensure_topics
from worker.errors import CopeError
from worker.monitor import RolloutMonitor, Side, metrics_text
from worker.settings import Settings

__all__ = ["build_app", "run_monitor"]

log = structlog.get_logger("cope.monitor")

_IDLE_S = 2.0  # no record for this long: ended windows are complete
_UNSUPPORTED = ("security.", "sasl.", "ssl.")


def _broker_urls(settings: Settings) -> list[str]:
    """faust's broker URLs from the librdkafka bootstrap list."""
    for option in settings.kafka_options:
        if option.startswith(_UNSUPPORTED):
            raise CopeError(
                f"COPE_KAFKA_OPTIONS sets {option}: the monitor's client (aiokafka) does not "
                "take librdkafka options; run it against a plaintext listener"
            )
    return [f"kafka://{host.strip()}" for host in settings.kafka_bootstrap.split(",")]


def build_app(
    settings: Settings,
    monitor: RolloutMonitor,
    *,
    app_id: str,
    data_dir: Path,
    from_beginning: bool = False,
) -> Any:
    """The faust app: one counting agent, one timer, two web pages."""
    app = faust.App(
        app_id,
        broker=_broker_urls(settings),
        store="memory://",
        datadir=str(data_dir),
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest" if from_beginning else "latest",
        topic_disable_leader=True,
        topic_allow_declare=False,
        web_port=settings.monitor_web_port,
    )
    labels = app.topic(
        settings.labels_topic,
        settings.shadow_labels_topic,
        key_serializer="raw",
        value_serializer="raw",
    )
    last_record = [time.monotonic()]

    @app.agent(labels)
    async def count(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            side: Side = "shadow" if message.topic == settings.shadow_labels_topic else "live"
            kafka_ms = int(message.timestamp * 1000) if message.timestamp else None
            reason = monitor.record(side, event.value, kafka_ms)
            last_record[0] = time.monotonic()
            if reason is not None:
                log.warning(
                    "monitor_record_skipped",
                    topic=message.topic,
                    partition=message.partition,
                    offset=message.offset,
                    reason=reason,
                )

    async def close_windows() -> None:
        idle = time.monotonic() - last_record[0] >= _IDLE_S
        for alert in monitor.close_windows(int(time.time() * 1000), idle):
            log.warning("monitor_alert", **alert.fields())

    app.timer(interval=1.0)(close_windows)  # faust's timer decorator is untyped

    @app.page("/rates")
    async def rates(web: Any, request: Any) -> Any:
        return web.json(monitor.snapshot())

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        # a header, not content_type=: aiohttp refuses a content type that names a charset
        return web.bytes(metrics_text(monitor), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return app


def run_monitor(settings: Settings, *, from_beginning: bool = False) -> int:
    """Create the label topics if missing, then count until SIGTERM or SIGINT."""
    broker = _broker_urls(settings)  # refuse unsupported options before creating anything
    ensure_topics(settings)
    monitor = RolloutMonitor(
        settings.monitor_window_s, settings.monitor_alert_delta, settings.monitor_min_events
    )
    app_id = f"cope-monitor-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="cope-monitor-") as data_dir:
        app = build_app(
            settings, monitor, app_id=app_id, data_dir=Path(data_dir), from_beginning=from_beginning
        )
        log.info(
            "monitor_started",
            app_id=app_id,
            broker=broker,
            topics=[settings.labels_topic, settings.shadow_labels_topic],
            web_port=settings.monitor_web_port,
            window_s=settings.monitor_window_s,
            alert_delta=settings.monitor_alert_delta,
        )
        worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
        worker.spinner = None  # a terminal spinner: escape codes on stdout, root logger at DEBUG
        try:
            worker.execute_from_commandline()
        except SystemExit as done:  # faust's worker always leaves through sys.exit
            return int(done.code or 0)
    return 0
