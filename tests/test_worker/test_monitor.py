"""The rollout monitor's counting, without a broker: windows, agreement, alerts, views."""

from __future__ import annotations

from worker.monitor import RolloutMonitor, metrics_text
from worker.schemas import LabelRecord, ModelRef, PolicyResult, SourceCoordinates

MINUTE = 60_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a window boundary


def label(content_id: str, at_ms: int, **results: tuple[int, bool]) -> bytes:
    """A label record as the worker writes it; results: policy id -> (version, decision)."""
    return (
        LabelRecord(
            content_id=content_id,
            results=[
                PolicyResult(
                    policy_id=policy_id.replace("_", "-"),
                    policy_version=version,
                    policy_sha256="0" * 64,
                    score=0.9 if decision else 0.1,
                    decision=decision,
                    threshold=0.5,
                )
                for policy_id, (version, decision) in results.items()
            ],
            model=ModelRef(name="tiny", version="0.0.1", sha256="0" * 64),
            source=SourceCoordinates(topic="events", partition=0, offset=0, timestamp_ms=at_ms),
            latency_ms=1.0,
        )
        .model_dump_json()
        .encode()
    )


def monitor(min_events: int = 1) -> RolloutMonitor:
    return RolloutMonitor(window_s=300, alert_delta=0.1, min_events=min_events)


def rates(m: RolloutMonitor) -> dict[tuple[int, str, str, int], tuple[int, int]]:
    return {
        (w["start_ms"], r["source"], r["policy_id"], r["version"]): (r["events"], r["flagged"])
        for w in m.snapshot()["windows"]
        for r in w["rates"]
    }


def test_flag_rates_are_counted_per_event_time_window_policy_and_version() -> None:
    m = monitor()
    for i in range(4):
        assert m.record("live", label(f"a{i}", T0 + i * MINUTE, hate=(1, i < 1)), None) is None
    m.record("live", label("b0", T0 + 5 * MINUTE, hate=(1, True), violence=(2, False)), None)
    m.record("shadow", label("b0", T0 + 5 * MINUTE, hate=(3, True)), None)
    assert rates(m) == {
        (T0, "live", "hate", 1): (4, 1),
        (T0 + 5 * MINUTE, "live", "hate", 1): (1, 1),
        (T0 + 5 * MINUTE, "live", "violence", 2): (1, 0),
        (T0 + 5 * MINUTE, "shadow", "hate", 3): (1, 1),
    }
    [first, _] = m.snapshot()["windows"]
    assert (first["start"], first["rates"][0]["flag_rate"]) == ("2026-01-01T00:00:00Z", 0.25)


def test_the_kafka_timestamp_stands_in_when_the_label_has_no_event_time() -> None:
    m = monitor()
    bare = label("x", 0, hate=(1, True)).replace(b'"timestamp_ms":0', b'"timestamp_ms":null')
    m.record("live", bare, T0 + 301_000)
    assert rates(m) == {(T0 + 300_000, "live", "hate", 1): (1, 1)}


def test_agreement_pairs_live_and_shadow_on_the_same_content_in_either_order() -> None:
    m = monitor()
    m.record("live", label("c1", T0, hate=(1, True)), None)
    m.record("shadow", label("c1", T0, hate=(2, True)), None)
    m.record("shadow", label("c2", T0, hate=(2, True)), None)  # shadow first
    m.record("live", label("c2", T0, hate=(1, False)), None)
    m.record("live", label("c3", T0, hate=(1, False)), None)  # no shadow label: not compared
    [agreement] = m.snapshot()["windows"][0]["agreement"]
    assert agreement == {
        "policy_id": "hate",
        "active_version": 1,
        "shadow_version": 2,
        "compared": 2,
        "agreed": 1,
        "agreement": 0.5,
    }


def test_a_label_read_twice_is_counted_once() -> None:
    m = monitor()
    for _ in range(2):
        m.record("live", label("d", T0, hate=(1, True)), None)
        m.record("shadow", label("d", T0, hate=(2, False)), None)
    assert rates(m) == {(T0, "live", "hate", 1): (1, 1), (T0, "shadow", "hate", 2): (1, 0)}
    assert m.snapshot()["windows"][0]["agreement"][0]["compared"] == 1


def test_malformed_records_are_skipped_with_a_reason_and_never_raise() -> None:
    m = monitor()
    assert m.record("live", b"not json {", None) == "bad_json"
    assert m.record("live", b"\xff\xfe", None) == "bad_json"
    assert m.record("live", b'{"content_id": "x"}', None) == "invalid_label"
    assert m.record("live", b"[1, 2]", None) == "invalid_label"
    assert m.record("shadow", None, None) == "empty"
    bare = label("x", 0, hate=(1, True)).replace(b'"timestamp_ms":0', b'"timestamp_ms":null')
    assert m.record("live", bare, None) == "no_timestamp"
    assert m.snapshot()["skipped"] == {
        "bad_json": 2,
        "empty": 1,
        "invalid_label": 2,
        "no_timestamp": 1,
    }
    assert m.snapshot()["windows"] == []


def _shadow_run(m: RolloutMonitor, start: int, live_flags: int, shadow_flags: int) -> None:
    """Ten events at `start`: live hate@1 and shadow hate@2 flag the first N of them."""
    for i in range(10):
        m.record("live", label(f"e{start}-{i}", start, hate=(1, i < live_flags)), None)
        m.record("shadow", label(f"e{start}-{i}", start, hate=(2, i < shadow_flags)), None)


def test_a_shadow_version_whose_rate_moves_past_the_delta_alerts_once_its_window_closes() -> None:
    m = monitor(min_events=5)
    _shadow_run(m, T0, live_flags=2, shadow_flags=5)  # 0.2 -> 0.5
    _shadow_run(m, T0 + 300_000, live_flags=2, shadow_flags=3)  # 0.2 -> 0.3: within the delta
    assert m.close_windows(now_ms=T0 + 200_000, idle=True) == []  # not ended yet
    assert m.close_windows(now_ms=T0 + 10 * 300_000, idle=False) == []  # still reading
    [alert] = m.close_windows(now_ms=T0 + 10 * 300_000, idle=True)
    assert alert.fields() == {
        "kind": "shadow",
        "policy_id": "hate",
        "version": 2,
        "baseline_version": 1,
        "window_start": "2026-01-01T00:00:00Z",
        "flag_rate": 0.5,
        "baseline_flag_rate": 0.2,
        "delta": 0.3,
        "events": 10,
        "baseline_events": 10,
    }
    assert m.close_windows(now_ms=T0 + 10 * 300_000, idle=True) == []  # raised once
    assert [w["closed"] for w in m.snapshot()["windows"]] == [True, True]
    assert m.snapshot()["alerts"] == [alert.fields()]


def test_a_window_closes_once_events_a_whole_window_later_arrive() -> None:
    m = monitor(min_events=5)
    _shadow_run(m, T0, live_flags=0, shadow_flags=9)
    m.record("live", label("later", T0 + 300_000 + 10, hate=(1, False)), None)
    assert m.close_windows(now_ms=T0, idle=False) == []  # the next window may still get late labels
    m.record("live", label("much-later", T0 + 600_000, hate=(1, False)), None)
    [alert] = m.close_windows(now_ms=T0, idle=False)
    assert (alert.kind, alert.window_start_ms) == ("shadow", T0)


def test_too_few_events_never_alert() -> None:
    m = monitor(min_events=20)
    _shadow_run(m, T0, live_flags=0, shadow_flags=10)
    assert m.close_windows(now_ms=T0 + 10 * 300_000, idle=True) == []


def test_a_newly_activated_version_is_compared_with_the_one_before_in_its_first_window() -> None:
    m = monitor(min_events=5)
    for window, (version, flags) in enumerate([(1, 1), (2, 6), (2, 1)]):
        start = T0 + window * 300_000
        for i in range(10):
            m.record("live", label(f"v{window}-{i}", start, hate=(version, i < flags)), None)
    [alert] = m.close_windows(now_ms=T0 + 10 * 300_000, idle=True)
    assert (alert.kind, alert.version, alert.baseline_version) == ("activation", 2, 1)
    assert (alert.window_start_ms, alert.rate, alert.baseline_rate) == (T0 + 300_000, 0.6, 0.1)


def test_old_windows_are_evicted_and_labels_older_than_all_kept_windows_skipped() -> None:
    m = RolloutMonitor(window_s=300, alert_delta=0.1, min_events=1, keep_windows=2)
    for window in range(3):
        m.record("live", label(f"w{window}", T0 + window * 300_000, hate=(1, True)), None)
    assert [w["start_ms"] for w in m.snapshot()["windows"]] == [T0 + 300_000, T0 + 600_000]
    assert m.record("live", label("old", T0, hate=(1, True)), None) == "too_late"


def test_prometheus_text_has_rates_agreement_and_skips() -> None:
    m = monitor()
    m.record("live", label("p", T0, hate=(1, True)), None)
    m.record("shadow", label("p", T0, hate=(2, False)), None)
    m.record("live", b"oops", None)
    text = metrics_text(m).decode()
    assert (
        'cope_monitor_flag_rate{policy="hate",source="live",version="1",'
        'window_start="2026-01-01T00:00:00Z"} 1.0' in text
    )
    assert (
        'cope_monitor_agreement{active_version="1",policy="hate",shadow_version="2",'
        'window_start="2026-01-01T00:00:00Z"} 0.0' in text
    )
    assert 'cope_monitor_records_skipped_total{reason="bad_json"} 1.0' in text
