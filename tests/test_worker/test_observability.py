from __future__ import annotations

import io
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from worker.observability import Health, Progress, WorkerMetrics, serve_http


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture
def served() -> Iterator[tuple[int, WorkerMetrics, Health]]:
    metrics, health = WorkerMetrics(), Health(stall_after_s=60)
    server = serve_http(0, metrics, health)
    yield server.server_address[1], metrics, health
    server.shutdown()


def test_readiness_needs_the_model_and_an_assignment(
    served: tuple[int, WorkerMetrics, Health],
) -> None:
    port, _, health = served
    assert _get(port, "/healthz") == (200, "ok\n")
    assert _get(port, "/readyz")[0] == 503
    health.model_loaded = True
    assert _get(port, "/readyz")[0] == 503
    health.partitions_assigned([])  # a standby member with no partitions is still ready
    assert _get(port, "/readyz") == (200, "ready\n")


def test_revoked_partitions_are_forgotten_and_a_lost_assignment_is_not_ready() -> None:
    health = Health(stall_after_s=60)
    health.model_loaded = True
    health.partitions_assigned([("t", 0), ("t", 1)])
    health.partitions_assigned([("t", 2)])  # cooperative rebalances add incrementally
    health.partitions_revoked([("t", 1)], lost=False)
    assert health.assigned == {("t", 0), ("t", 2)}
    assert health.ready()
    health.partitions_revoked([("t", 0), ("t", 2)], lost=True)
    assert health.assigned == frozenset()
    assert not health.ready()
    health.partitions_assigned([("t", 0)])
    assert health.ready()


def test_a_stalled_loop_fails_liveness(served: tuple[int, WorkerMetrics, Health]) -> None:
    port, _, health = served
    health.stall_after_s = 0.0
    assert _get(port, "/healthz") == (503, "stalled\n")


def test_metrics_are_exposed_in_prometheus_format(
    served: tuple[int, WorkerMetrics, Health],
) -> None:
    port, metrics, _ = served
    metrics.dead_letters.labels("bad_json").inc(2)
    metrics.model_info.labels("m", "1", "abc").set(1)
    status, body = _get(port, "/metrics")
    assert status == 200
    assert 'cope_dead_letters_total{reason="bad_json"} 2.0' in body
    assert 'cope_model_info{name="m",sha256="abc",version="1"} 1.0' in body
    assert _get(port, "/nope")[0] == 404


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_on_a_terminal_and_stays_silent_elsewhere() -> None:
    terminal, pipe = _Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        progress = Progress(3, "labels", stream)
        progress.advance()
        progress.advance(2)
        progress.close()
    assert terminal.getvalue() == "\rlabels 1/3\rlabels 3/3\n"
    assert pipe.getvalue() == ""


def test_logging_follows_stderr_when_it_is_swapped_and_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    import structlog

    from worker.observability import configure_logging

    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging()
    first.close()  # as pytest closes a test's captured stream
    monkeypatch.setattr(sys, "stderr", second)
    structlog.get_logger("t").info("still_here", n=1)  # a closed stream would raise here
    assert '"event": "still_here"' in second.getvalue()
