"""The rollout monitor's counting: flag rates, agreement and alerts per tumbling window.

Pure: label records (bytes) and times in, counts, alerts and views out, so the
whole decision logic is tested without a broker; ``worker.consumers.monitor``
feeds it from Kafka and serves the views.

Windows are tumbling, aligned to the epoch and keyed by the event's own time
(the label's ``source.timestamp_ms``), so the live and shadow labels of one
event always land in the same window, however late either is read. The state
is plain dicts, not faust tables: the app only counts, a table would need
changelog topics on a broker that does not auto-create them, and losing the
counts on a restart is acceptable (a restarted monitor counts afresh).

Agreement pairs a policy's live and shadow results on the same content id
within a window. Within a window a (side, content id, policy) is counted once,
so records read twice (at-least-once) do not inflate the counts.

A window is *closed* once later events have moved a whole window past its end,
or once it has ended and the input is idle; only closed windows raise alerts,
so a half-read window never does. A shadow version is compared with the live
(active) version of its policy in the same window; a newly activated live
version, in its first window with enough events, with the version before it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import ValidationError

from worker.schemas import LabelRecord

__all__ = ["Alert", "RolloutMonitor", "Side", "metrics_text"]

Side = Literal["live", "shadow"]
AlertKind = Literal["shadow", "activation"]


@dataclass
class _Count:
    events: int = 0
    hits: int = 0  # flagged, or agreed

    def add(self, hit: bool) -> None:
        self.events += 1
        self.hits += hit

    def ratio(self) -> float:
        return self.hits / self.events if self.events else 0.0


@dataclass
class _Window:
    start_ms: int
    rates: dict[tuple[Side, str, int], _Count] = field(default_factory=dict)
    agreement: dict[tuple[str, int, int], _Count] = field(default_factory=dict)
    # content id -> side -> policy id -> (version, decision); freed when the window closes
    seen: dict[str, dict[Side, dict[str, tuple[int, bool]]]] | None = field(default_factory=dict)

    @property
    def closed(self) -> bool:
        return self.seen is None

    def rate(self, side: Side, policy_id: str, version: int) -> _Count:
        return self.rates.setdefault((side, policy_id, version), _Count())


@dataclass(frozen=True)
class Alert:
    """A version's flag rate moved more than the allowed delta from its baseline."""

    kind: AlertKind
    policy_id: str
    version: int
    baseline_version: int
    window_start_ms: int
    rate: float
    baseline_rate: float
    events: int
    baseline_events: int

    def fields(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "policy_id": self.policy_id,
            "version": self.version,
            "baseline_version": self.baseline_version,
            "window_start": _iso(self.window_start_ms),
            "flag_rate": round(self.rate, 6),
            "baseline_flag_rate": round(self.baseline_rate, 6),
            "delta": round(self.rate - self.baseline_rate, 6),
            "events": self.events,
            "baseline_events": self.baseline_events,
        }


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _reason(exc: ValidationError) -> str:
    return "bad_json" if any(e["type"] == "json_invalid" for e in exc.errors()) else "invalid_label"


class RolloutMonitor:
    """Counts per window; call :meth:`record` per label and :meth:`close_windows` often."""

    def __init__(
        self, window_s: float, alert_delta: float, min_events: int, keep_windows: int = 12
    ) -> None:
        self.window_ms = int(window_s * 1000)
        self.alert_delta = alert_delta
        self.min_events = min_events
        self.keep_windows = keep_windows
        self.windows: dict[int, _Window] = {}
        self.skipped: dict[str, int] = {}
        self.alerts: list[Alert] = []
        self.watermark_ms: int | None = None  # the latest event time seen
        self._latest_rate: dict[tuple[str, int], _Count] = {}  # live, from closed windows
        self._established: set[tuple[str, int]] = set()  # live versions past their first window
        self._unreported: list[Alert] = []  # from windows evicted before they closed

    def record(self, side: Side, value: bytes | None, timestamp_ms: int | None) -> str | None:
        """Count one label record; return why it was skipped, or None."""
        if value is None:
            return self._skip("empty")
        try:
            label = LabelRecord.model_validate_json(value)
        except ValidationError as exc:
            return self._skip(_reason(exc))
        when = label.source.timestamp_ms or timestamp_ms
        if when is None or when < 0:
            return self._skip("no_timestamp")
        return self.observe(side, label, when)

    def _skip(self, reason: str) -> str:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        return reason

    def observe(self, side: Side, label: LabelRecord, when_ms: int) -> str | None:
        """Count a parsed label in the window of `when_ms` (event time)."""
        start = when_ms - when_ms % self.window_ms
        window = self.windows.get(start)
        if window is None:
            if len(self.windows) >= self.keep_windows and start < min(self.windows):
                return self._skip("too_late")  # older than every window still kept
            window = self.windows[start] = _Window(start)
            self._evict()
        self.watermark_ms = max(self.watermark_ms or when_ms, when_ms)
        if window.seen is None:  # closed: late labels still count, but pair no more
            for result in label.results:
                window.rate(side, result.policy_id, result.policy_version).add(result.decision)
            return None
        sides = window.seen.setdefault(label.content_id, {})
        mine = sides.setdefault(side, {})
        theirs = sides.get("shadow" if side == "live" else "live", {})
        for result in label.results:
            if result.policy_id in mine:
                continue  # read again (at-least-once): counted already
            mine[result.policy_id] = (result.policy_version, result.decision)
            window.rate(side, result.policy_id, result.policy_version).add(result.decision)
            paired = theirs.get(result.policy_id)
            if paired is not None:
                versions = (result.policy_version, paired[0])
                live, shadow = versions if side == "live" else versions[::-1]
                key = (result.policy_id, live, shadow)
                window.agreement.setdefault(key, _Count()).add(paired[1] == result.decision)
        return None

    def _evict(self) -> None:
        for start in sorted(self.windows)[: max(0, len(self.windows) - self.keep_windows)]:
            window = self.windows.pop(start)
            if not window.closed:
                self._unreported += self._close(window)

    def close_windows(self, now_ms: int, idle: bool) -> list[Alert]:
        """Close the windows that are complete and return their alerts (each raised once)."""
        alerts, self._unreported = self._unreported, []
        for start, window in sorted(self.windows.items()):
            end = start + self.window_ms
            passed = self.watermark_ms is not None and self.watermark_ms >= end + self.window_ms
            if not window.closed and (passed or (idle and now_ms >= end)):
                alerts += self._close(window)
        self.alerts = (self.alerts + alerts)[-100:]
        return alerts

    def _close(self, window: _Window) -> list[Alert]:
        window.seen = None
        full = {k: c for k, c in window.rates.items() if c.events >= self.min_events}
        live = {(p, v): c for (s, p, v), c in full.items() if s == "live"}
        compared: list[tuple[AlertKind, str, int, _Count, int, _Count]] = []
        for (side, policy_id, version), count in sorted(full.items()):
            if side == "shadow":
                active = [(c.events, v) for (p, v), c in live.items() if p == policy_id]
                if active:  # the version most of the window's live labels came from
                    baseline = max(active)[1]
                    compared.append(
                        ("shadow", policy_id, version, count, baseline, live[policy_id, baseline])
                    )
            elif (policy_id, version) not in self._established:
                self._established.add((policy_id, version))
                known = {**self._latest_rate, **live}  # this window's rate wins
                older = [v for p, v in known if p == policy_id and v < version]
                if older:
                    previous = max(older)
                    compared.append(
                        (
                            "activation",
                            policy_id,
                            version,
                            count,
                            previous,
                            known[policy_id, previous],
                        )
                    )
        self._latest_rate.update(live)
        return [
            Alert(
                kind,
                policy_id,
                version,
                baseline_version,
                window.start_ms,
                count.ratio(),
                baseline.ratio(),
                count.events,
                baseline.events,
            )
            for kind, policy_id, version, count, baseline_version, baseline in compared
            if abs(count.ratio() - baseline.ratio()) > self.alert_delta
        ]

    def snapshot(self) -> dict[str, Any]:
        """Everything the monitor knows, as JSON-ready data (the ``/rates`` view)."""
        return {
            "window_s": self.window_ms / 1000,
            "alert_delta": self.alert_delta,
            "min_events": self.min_events,
            "skipped": dict(sorted(self.skipped.items())),
            "windows": [
                {
                    "start": _iso(start),
                    "start_ms": start,
                    "end_ms": start + self.window_ms,
                    "closed": window.closed,
                    "rates": [
                        {
                            "source": side,
                            "policy_id": policy_id,
                            "version": version,
                            "events": count.events,
                            "flagged": count.hits,
                            "flag_rate": round(count.ratio(), 6),
                        }
                        for (side, policy_id, version), count in sorted(window.rates.items())
                    ],
                    "agreement": [
                        {
                            "policy_id": policy_id,
                            "active_version": active,
                            "shadow_version": shadow,
                            "compared": count.events,
                            "agreed": count.hits,
                            "agreement": round(count.ratio(), 6),
                        }
                        for (policy_id, active, shadow), count in sorted(window.agreement.items())
                    ],
                }
                for start, window in sorted(self.windows.items())
            ],
            "alerts": [alert.fields() for alert in self.alerts],
        }


class _MonitorCollector(Collector):
    def __init__(self, monitor: RolloutMonitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[Metric]:
        labels = ["policy", "version", "source", "window_start"]
        rate = GaugeMetricFamily(
            "cope_monitor_flag_rate", "Flagged share per window", labels=labels
        )
        events = GaugeMetricFamily("cope_monitor_events", "Labels per window", labels=labels)
        agreement = GaugeMetricFamily(
            "cope_monitor_agreement",
            "Share of events where the active and shadow versions agree",
            labels=["policy", "active_version", "shadow_version", "window_start"],
        )
        for start, window in sorted(self.monitor.windows.items()):
            when = _iso(start)
            for (side, policy_id, version), count in sorted(window.rates.items()):
                rate.add_metric([policy_id, str(version), side, when], count.ratio())
                events.add_metric([policy_id, str(version), side, when], count.events)
            for (policy_id, active, shadow), count in sorted(window.agreement.items()):
                agreement.add_metric([policy_id, str(active), str(shadow), when], count.ratio())
        skipped = CounterMetricFamily(
            "cope_monitor_records_skipped", "Label records not counted", labels=["reason"]
        )
        for reason, total in sorted(self.monitor.skipped.items()):
            skipped.add_metric([reason], total)
        yield from (rate, events, agreement, skipped)


def metrics_text(monitor: RolloutMonitor) -> bytes:
    """The monitor's state in the Prometheus text format (the ``/metrics`` view)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_MonitorCollector(monitor))
    return generate_latest(registry)
