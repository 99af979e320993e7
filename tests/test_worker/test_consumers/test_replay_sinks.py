"""Replay into a Kafka topic named for the run, against a real broker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policy_registry import library_policy
from tests.kafka_support import (
    content_events,
    create_topics,
    produce,
    read_committed,
    registry_setup,
    replay_cli,
    replay_env,
    running_worker,
)
from worker.consumers.replay import read_label_topic
from worker.settings import Settings

HATE = library_policy("hate")


def _without_run_id(row: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in row.items() if k not in ("replay_run_id", "latency_ms")}


def _topic_env(settings: Settings) -> dict[str, str]:
    """The replay's settings, with the live label topics it must keep away from."""
    return replay_env(settings) | {
        "COPE_LABELS_TOPIC": settings.labels_topic,
        "COPE_SHADOW_LABELS_TOPIC": settings.shadow_labels_topic,
        "COPE_DLQ_TOPIC": settings.dlq_topic,
    }


def _partitions(settings: Settings, topic: str) -> int:
    from confluent_kafka.admin import AdminClient

    metadata = AdminClient({"bootstrap.servers": settings.kafka_bootstrap}).list_topics(topic)
    return len(metadata.topics[topic].partitions)


def test_replay_to_a_topic_named_for_the_run_equals_the_jsonl_and_live_labels(
    kafka_bootstrap: str,
    worker_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings, store = registry_setup(kafka_bootstrap, worker_model_dir)
    store.publish("hate", HATE, author="t", activate=True)
    store.close()
    with running_worker(settings):
        produce(kafka_bootstrap, settings.content_topic, content_events("k", 8))
        live = read_committed(kafka_bootstrap, settings.labels_topic, expected=8, settle_s=0)
    monkeypatch.chdir(tmp_path)  # the topic run's manifest defaults to the working directory
    out = tmp_path / "replay.jsonl"
    env = _topic_env(settings)
    assert replay_cli(env, monkeypatch, "--as-of", "--out", str(out)) == 0
    capsys.readouterr()
    assert replay_cli(env, monkeypatch, "--as-of", "--to-topic") == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    run_id = summary["run_id"]
    topic = f"{settings.labels_topic}.{run_id}"
    assert summary["output"] == f"topic:{topic}"
    manifest = json.loads((tmp_path / f"{run_id}.manifest.json").read_text())
    assert summary["manifest"] == f"{run_id}.manifest.json"
    assert manifest["output_topic"] == topic
    assert manifest["counts"] == {"events": 8, "labels": 8, "dead_letters": 0}
    assert manifest["policy_versions"] == {"hate": [1]}
    assert set(manifest["offsets"]) == {"0", "1", "2"}
    assert _partitions(settings, topic) == _partitions(settings, settings.labels_topic)

    in_topic = read_committed(kafka_bootstrap, topic, expected=8, settle_s=0)
    assert sorted(key or b"" for key, _ in in_topic) == sorted(f"k{i}".encode() for i in range(8))
    replayed = {row["content_id"]: row for row in read_label_topic(settings, topic)}
    assert {row["replay_run_id"] for row in replayed.values()} == {run_id}
    in_file = {row["content_id"]: row for row in map(json.loads, out.read_text().splitlines())}
    assert {k: _without_run_id(v) for k, v in replayed.items()} == {
        k: _without_run_id(v) for k, v in in_file.items()
    }
    for _, value in live:  # scores, versions and coordinates bit for bit
        label = json.loads(value)
        assert replayed[label["content_id"]]["results"] == label["results"]
        assert replayed[label["content_id"]]["source"] == label["source"]
    assert len(read_label_topic(settings, settings.labels_topic)) == 8  # live labels untouched


def test_replay_refuses_live_topics_and_topics_that_hold_records(
    kafka_bootstrap: str,
    worker_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings, store = registry_setup(kafka_bootstrap, worker_model_dir)
    store.publish("hate", HATE, author="t", activate=True)
    store.close()
    produce(kafka_bootstrap, settings.content_topic, content_events("r", 3))
    env = _topic_env(settings)
    manifest = str(tmp_path / "m.json")
    for live in (settings.labels_topic, settings.shadow_labels_topic, settings.content_topic):
        code = replay_cli(env, monkeypatch, "--as-of", "--to-topic", live, "--manifest", manifest)
        assert code == 2
        assert "one of the worker's live topics" in capsys.readouterr().err
    used = f"{settings.labels_topic}.used"
    create_topics(kafka_bootstrap, [used])
    produce(kafka_bootstrap, used, [(b"x", b"an earlier run")])
    assert replay_cli(env, monkeypatch, "--as-of", "--to-topic", used, "--manifest", manifest) == 2
    assert f"topic {used} already holds records" in capsys.readouterr().err
    out = str(tmp_path / "o.jsonl")
    assert replay_cli(env, monkeypatch, "--as-of", "--out", out, "--to-topic") == 2
    assert "choose one output" in capsys.readouterr().err
    assert not Path(manifest).exists()
    assert read_label_topic(settings, settings.labels_topic) == []
    assert read_label_topic(settings, settings.shadow_labels_topic) == []
