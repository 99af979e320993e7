"""Replay against a real broker: ranges, as-of versions, and equality with live labels."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from policy_registry import library_policy
from tests.kafka_support import (
    content_events,
    produce,
    read_committed,
    registry_setup,
    replay_cli,
    replay_env,
    running_worker,
)
from worker.cli import main

HATE = library_policy("hate")


def test_as_of_replay_reproduces_live_labels_across_a_swap_to_the_last_bit(
    kafka_bootstrap: str,
    worker_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings, store = registry_setup(kafka_bootstrap, worker_model_dir)
    store.publish("hate", HATE, author="t", activate=True)
    before, after = content_events("a", 12), content_events("b", 12)
    with running_worker(settings):
        produce(kafka_bootstrap, settings.content_topic, before)
        read_committed(kafka_bootstrap, settings.labels_topic, expected=12, settle_s=0)
        store.publish("hate", HATE + "\nRevised.", author="t", activate=True)
        time.sleep(0.5)  # events after the swap are stamped after the activation
        produce(kafka_bootstrap, settings.content_topic, after)
        live = read_committed(kafka_bootstrap, settings.labels_topic, expected=24)
    store.close()
    out = tmp_path / "replay.jsonl"
    assert replay_cli(replay_env(settings), monkeypatch, "--as-of", "--out", str(out)) == 0
    replayed = {row["content_id"]: row for row in map(json.loads, out.read_text().splitlines())}
    assert len(replayed) == 24
    for _, value in live:
        label = json.loads(value)
        again = replayed[label["content_id"]]
        assert again["results"] == label["results"]  # versions, sha256 and scores, bit for bit
        assert again["source"] == label["source"]
        assert again["replay_run_id"].startswith("replay-")
    versions = {
        row["content_id"][0]: row["results"][0]["policy_version"] for row in replayed.values()
    }
    assert versions == {"a": 1, "b": 2}
    manifest = json.loads(out.with_suffix(".manifest.json").read_text())
    assert manifest["counts"] == {"events": 24, "labels": 24, "dead_letters": 0}
    assert manifest["policy_versions"] == {"hate": [1, 2]}
    diff_dir = tmp_path / "diff"
    code = replay_cli(
        replay_env(settings),
        monkeypatch,
        "diff",
        f"topic:{settings.labels_topic}",
        str(out),
        "--out",
        str(diff_dir),
    )
    assert code == 0
    assert "| hate | [1, 2] | [1, 2] | 24 |" in (diff_dir / "report.md").read_text()


def test_a_time_range_replays_exactly_its_events_under_a_pinned_version(
    kafka_bootstrap: str,
    worker_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings, store = registry_setup(kafka_bootstrap, worker_model_dir)
    store.publish("hate", HATE, author="t", activate=True)
    candidate = store.publish("hate", HATE + "\nCandidate.", author="t")
    store.close()
    day = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    for hour, prefix in enumerate(["x", "y", "z"]):
        produce(
            kafka_bootstrap,
            settings.content_topic,
            content_events(prefix, 5),
            timestamp_ms=day + hour * 3_600_000,
        )
    out = tmp_path / "range.jsonl"
    code = replay_cli(
        replay_env(settings),
        monkeypatch,
        "--from",
        "2026-01-01T01:00:00+00:00",
        "--to",
        "2026-01-01T02:00:00+00:00",
        "--policy",
        f"hate@{candidate.version}",
        "--out",
        str(out),
    )
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(row["content_id"] for row in rows) == [f"y{i}" for i in range(5)]
    assert {row["results"][0]["policy_version"] for row in rows} == {candidate.version}


def test_bad_replay_requests_are_clear_errors(
    kafka_bootstrap: str,
    worker_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings, store = registry_setup(kafka_bootstrap, worker_model_dir)
    store.close()
    env = replay_env(settings)
    out = str(tmp_path / "o.jsonl")
    assert replay_cli(env, monkeypatch, "--policy", "hate@7", "--out", out) == 2
    assert "the registry has no hate@7" in capsys.readouterr().err
    assert replay_cli(env, monkeypatch, "--policy", "hate", "--out", out) == 2
    assert "use ID@VERSION" in capsys.readouterr().err
    assert replay_cli(env, monkeypatch, "--as-of", "--from", "yesterday", "--out", out) == 2
    assert "not an ISO-8601 time" in capsys.readouterr().err
    assert replay_cli(env, monkeypatch, "--as-of", "--partitions", "9", "--out", out) == 2
    assert "has no partition(s) [9]" in capsys.readouterr().err


def test_audit_reproduces_a_live_label_and_shows_the_policy_applied(
    kafka_bootstrap: str,
    worker_model_dir: Path,
    tiny_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings, store = registry_setup(kafka_bootstrap, worker_model_dir)
    store.publish("hate", HATE, author="t", activate=True)
    store.close()
    with running_worker(settings):
        produce(kafka_bootstrap, settings.content_topic, content_events("q", 6))
        read_committed(kafka_bootstrap, settings.labels_topic, expected=6, settle_s=0)
    env = {**replay_env(settings), "COPE_LABELS_TOPIC": settings.labels_topic}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()  # drop the worker's log lines
    assert main(["audit", "q3", "--provider", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["reproduces"] is True
    [policy] = report["policies"]
    assert (policy["policy_id"], policy["version"]) == ("hate", 1)
    assert policy["recorded_score"] == policy["rescored"]
    assert policy["policy_text"] == HATE
    assert main(["audit", "nobody", "--provider", "cpu"]) == 2
    assert "no label for content id 'nobody'" in capsys.readouterr().err
    assert main(["audit", "q3", "--provider", "cpu", "--model-dir", str(tiny_model_dir)]) == 2
    error = capsys.readouterr().err  # same ONNX file, another manifest (window): refused
    assert "manifest_sha256 differ" in error
    assert "point COPE_MODEL_DIR" in error
