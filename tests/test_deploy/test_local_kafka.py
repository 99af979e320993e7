"""The local broker script stops its own broker, and only its own."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "local" / "kafka"


def _stand_in(argv0: str) -> int:
    """The pid of a detached process whose command line reads ``argv0 600``.

    Detached (its shell exits), as the script's broker is, so that once
    killed it is reaped rather than left a zombie of the test.
    """
    launched = subprocess.run(
        ["bash", "-c", 'exec -a "$0" sleep 600 >/dev/null 2>&1 & echo $!', argv0],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(launched.stdout)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _kill(pid: int) -> None:
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def _stop(data_dir: Path, pid: int) -> subprocess.CompletedProcess[str]:
    (data_dir / "kafka.pid").write_text(f"{pid}\n")
    env = os.environ | {"COPE_KAFKA_DATA_DIR": str(data_dir), "COLUMNS": "40"}
    env.pop("COPE_KAFKA_BOOTSTRAP", None)
    return subprocess.run(
        [str(SCRIPT), "stop"], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_stop_finds_a_broker_whose_command_line_is_wider_than_the_terminal(
    tmp_path: Path,
) -> None:
    # ps cuts its output to $COLUMNS; a broker's java command line is longer,
    # and a cut line hid the config path, so `stop` said "not running" and
    # left the broker holding its ports.
    broker = _stand_in(f"java {'-Xopt ' * 40}kafka.Kafka {tmp_path}/server.properties")
    try:
        stopped = _stop(tmp_path, broker)
        assert stopped.returncode == 0, stopped.stderr
        assert "stopped" in stopped.stderr
        assert not _alive(broker)
        assert not (tmp_path / "kafka.pid").exists()
    finally:
        _kill(broker)


def test_stop_leaves_alone_a_process_that_reused_the_recorded_pid(tmp_path: Path) -> None:
    stranger = _stand_in("some-other-program")
    try:
        stopped = _stop(tmp_path, stranger)
        assert stopped.returncode == 0, stopped.stderr
        assert "not running" in stopped.stderr
        time.sleep(0.3)
        assert _alive(stranger)
    finally:
        _kill(stranger)
