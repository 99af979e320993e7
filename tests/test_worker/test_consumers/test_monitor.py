"""`cope monitor` against a real broker: its windows count what was produced, and it alerts."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from tests.kafka_support import isolated_settings, produce, unique_prefix
from tests.test_worker.test_monitor import T0, label
from worker.cli import main
from worker.settings import Settings

W2 = T0 + 300_000


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
        return bytes(reply.read())


def _wait_for(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            found = check()
        except OSError:
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


@contextmanager
def running_monitor(settings: Settings, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`cope monitor --from-beginning` in a process of its own, stopped with SIGTERM."""
    env = {
        **os.environ,
        "COPE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "COPE_CONTENT_TOPIC": settings.content_topic,
        "COPE_LABELS_TOPIC": settings.labels_topic,
        "COPE_SHADOW_LABELS_TOPIC": settings.shadow_labels_topic,
        "COPE_DLQ_TOPIC": settings.dlq_topic,
        "COPE_MONITOR_WEB_PORT": str(settings.monitor_web_port),
        "COPE_MONITOR_MIN_EVENTS": "5",
        "COPE_MONITOR_ALERT_DELTA": "0.1",
        "COPE_MONITOR_WINDOW_S": "300",
    }
    command = [sys.executable, "-m", "worker.cli", "monitor", "--from-beginning"]
    with log.open("wb") as stderr:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                raise


def _log_events(log: Path, event: str) -> list[dict[str, Any]]:
    rows = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            if row.get("event") == event:
                rows.append(row)
    return rows


def _labels() -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]:
    """Live and shadow labels in two windows; hate@2 (shadow) flags far more in the first."""
    live, shadow = [], []
    for i in range(10):  # window 1: hate 2/10 live, 6/10 shadow; violence 5/10, no shadow
        cid = f"a{i}"
        live.append((cid.encode(), label(cid, T0 + i, hate=(1, i < 2), violence=(1, i % 2 == 0))))
        shadow.append((cid.encode(), label(cid, T0 + i, hate=(2, i < 6))))
    for i in range(6):  # window 2: 3/6 each, on partly different events
        cid = f"b{i}"
        live.append((cid.encode(), label(cid, W2 + i, hate=(1, i in (0, 1, 2)))))
        shadow.append((cid.encode(), label(cid, W2 + i, hate=(2, i in (1, 2, 3)))))
    return live, shadow


def test_monitor_windows_count_what_was_produced_and_a_shifted_shadow_alerts(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = isolated_settings(
        kafka_bootstrap, unique_prefix(), Path(), monitor_web_port=_free_port()
    )
    port, log = settings.monitor_web_port, tmp_path / "monitor.log"
    with running_monitor(settings, log):
        _wait_for(lambda: _get(port, "/rates"), 90, "the monitor's web server")
        topics = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10).topics
        assert {settings.labels_topic, settings.shadow_labels_topic} <= set(topics)  # it made them
        live, shadow = _labels()
        malformed: list[tuple[bytes | None, bytes | None]] = [
            (b"m1", b"not json {"),
            (b"m2", b'{"content_id": "x"}'),
            (b"m3", None),
        ]
        produce(kafka_bootstrap, settings.labels_topic, [*live, *malformed])
        produce(kafka_bootstrap, settings.shadow_labels_topic, shadow)

        def settled() -> dict[str, Any] | None:
            rates = json.loads(_get(port, "/rates"))
            windows = rates["windows"]
            done = len(windows) == 2 and all(w["closed"] for w in windows) and rates["alerts"]
            return rates if done and sum(rates["skipped"].values()) == 3 else None

        rates = _wait_for(settled, 60, "both windows to close")
        metrics = _get(port, "/metrics").decode()

    counted = {
        (w["start_ms"], r["source"], r["policy_id"], r["version"]): (r["events"], r["flagged"])
        for w in rates["windows"]
        for r in w["rates"]
    }
    assert counted == {
        (T0, "live", "hate", 1): (10, 2),
        (T0, "live", "violence", 1): (10, 5),
        (T0, "shadow", "hate", 2): (10, 6),
        (W2, "live", "hate", 1): (6, 3),
        (W2, "shadow", "hate", 2): (6, 3),
    }
    agreement = {
        w["start_ms"]: [
            (a["policy_id"], a["active_version"], a["shadow_version"], a["agreed"])
            for a in w["agreement"]
        ]
        for w in rates["windows"]
    }
    assert agreement == {T0: [("hate", 1, 2, 6)], W2: [("hate", 1, 2, 4)]}
    assert rates["skipped"] == {"bad_json": 1, "empty": 1, "invalid_label": 1}
    assert (
        'cope_monitor_flag_rate{policy="hate",source="shadow",version="2",'
        'window_start="2026-01-01T00:00:00Z"} 0.6' in metrics
    )

    [alert] = _log_events(log, "monitor_alert")  # window 2 moved by 0: no alert
    assert alert["kind"] == "shadow"
    assert (alert["policy_id"], alert["version"], alert["baseline_version"]) == ("hate", 2, 1)
    assert (alert["flag_rate"], alert["baseline_flag_rate"]) == (0.6, 0.2)
    assert alert["window_start"] == "2026-01-01T00:00:00Z"
    assert alert["level"] == "warning"
    skipped = _log_events(log, "monitor_record_skipped")
    assert sorted(row["reason"] for row in skipped) == ["bad_json", "empty", "invalid_label"]
    assert {row["topic"] for row in skipped} == {settings.labels_topic}


def test_monitor_refuses_librdkafka_security_options_it_cannot_apply(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COPE_KAFKA_OPTIONS", '{"security.protocol": "SASL_SSL"}')
    assert main(["monitor"]) == 2
    assert "COPE_KAFKA_OPTIONS sets security.protocol" in capsys.readouterr().err
