"""The stream commands: worker run, topics create, demo, replay, audit, monitor."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from worker.cli.common import model_options, settings_from
from worker.errors import CopeError
from worker.settings import Settings

__all__ = ["register"]


def _registry_reader(settings: Settings, on_skip: Callable[[str], None] | None = None) -> Any:
    """A reader of the registry topic, verifying signatures when a public key is set."""
    from policy_registry.signing import Verifier
    from policy_registry.store import RegistryReader

    verifier = (
        Verifier.from_pem(settings.registry_public_key) if settings.registry_public_key else None
    )
    return RegistryReader(
        settings.kafka_bootstrap,
        settings.registry_topic,
        settings.kafka_options,
        on_skip=on_skip,
        verifier=verifier,
    )


def _registry_state(settings: Settings) -> Any:
    """The registry as of now, read to its end (replay and audit need only its history)."""
    reader = _registry_reader(settings)
    try:
        reader.catch_up(settings.registry_catch_up_s)
    finally:
        reader.close()
    return reader.state


def _policy_source(settings: Settings, metrics: Any, health: Any, check: Any) -> Any:
    """Per-batch snapshots: the registry (read to its end first) or the library."""
    from policy_registry.store import check_registry_topic
    from worker.policies import RegistryPolicies, library_snapshot

    if settings.policy_source == "library":
        snapshot = library_snapshot(settings.default_policy_ids, settings.decision_threshold)
        for policy in snapshot.policies.values():  # refuse at start-up, not per event
            check(policy.text)
        return lambda: snapshot
    log = structlog.get_logger("cope.registry")

    def skipped(reason: str) -> None:
        metrics.registry_skipped.inc()
        log.warning("registry_record_skipped", topic=settings.registry_topic, reason=reason)

    check_registry_topic(settings.kafka_bootstrap, settings.registry_topic, settings.kafka_options)
    reader = _registry_reader(settings, on_skip=skipped)
    health.caught_up = False
    reader.catch_up(settings.registry_catch_up_s)  # nothing is classified before this
    health.caught_up = True
    reader.follow()
    return RegistryPolicies(reader, check)


def _cmd_worker_run(args: argparse.Namespace) -> int:
    import signal

    from worker.consumers.live import LiveWorker
    from worker.model.runtime import load_classifier
    from worker.observability import Health, WorkerMetrics, configure_logging, serve_http

    configure_logging()
    settings = settings_from(args)
    metrics, health = WorkerMetrics(), Health.for_settings(settings)
    if settings.metrics_port:
        serve_http(settings.metrics_port, metrics, health)
    classifier = load_classifier(settings)
    model = classifier.model_ref()
    snapshot = _policy_source(settings, metrics, health, classifier.tokenizer.encode_policy)
    worker = LiveWorker(settings, classifier, model, snapshot, metrics, health)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: worker.stop())
    worker.run()
    return 0


def _cmd_topics_create(args: argparse.Namespace) -> int:
    from worker.consumers.admin import ensure_topics

    created = ensure_topics(settings_from(args), partitions=args.partitions)
    print(json.dumps({"created": created}))
    return 0


def _cmd_demo_feed(args: argparse.Namespace) -> int:
    from worker.consumers.demo import feed_and_watch

    labelled = feed_and_watch(settings_from(args), args.files, timeout_s=args.timeout)
    print(f"{labelled} labels received")
    return 0


def _millis(text: str | None) -> int | None:
    from datetime import UTC, datetime

    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CopeError(f"{text!r} is not an ISO-8601 time: {exc}") from exc
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)


def _label_set(settings: Settings, source: str) -> list[dict[str, Any]]:
    """Label records from a JSONL file, or from a topic given as ``topic:NAME``."""
    from worker.consumers.replay import read_label_topic
    from worker.model.evaluate import json_objects

    if source.startswith("topic:"):
        return read_label_topic(settings, source.removeprefix("topic:"))
    rows = [record for _, record in json_objects(Path(source))]
    for row in rows:
        if "content_id" not in row or not isinstance(row.get("results"), list):
            raise CopeError(f"{source}: not a label record: {str(row)[:80]}")
    return rows


def _cmd_replay_diff(args: argparse.Namespace, sources: list[str]) -> int:
    from worker.label_diff import diff_labels, write_report

    if len(sources) != 2 or args.out is None:
        raise CopeError("usage: cope replay diff A B --out DIR (A, B: JSONL or topic:NAME)")
    settings = settings_from(args)
    diffs = diff_labels(_label_set(settings, sources[0]), _label_set(settings, sources[1]))
    if not diffs:
        raise CopeError("the two label sets share no (event, policy) to compare")
    report = write_report(diffs, args.out, (sources[0], sources[1]))
    print(
        json.dumps(
            {
                "report": str(report),
                "policies": {
                    d.policy_id: {
                        "compared": d.compared,
                        "newly_flagged": len(d.newly_flagged),
                        "no_longer_flagged": len(d.no_longer_flagged),
                    }
                    for d in diffs.values()
                },
            }
        )
    )
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    if args.rest and args.rest[0] == "diff":
        return _cmd_replay_diff(args, args.rest[1:])
    if args.rest:
        raise CopeError(f"unexpected arguments {args.rest}; did you mean `cope replay diff`?")
    if not args.as_of and not args.policy:
        raise CopeError("choose the policies: --as-of or --policy ID@VERSION")
    if (args.out is None) == (args.to_topic is None):
        raise CopeError("choose one output: --out FILE.jsonl or --to-topic [NAME]")
    from worker.consumers.replay import new_run_id, replay, resolve_range
    from worker.consumers.replay_sinks import (
        JsonlSink,
        LabelSink,
        open_topic_sink,
        replay_topic_name,
    )
    from worker.model.runtime import load_classifier
    from worker.policies import as_of_snapshots, pinned_snapshot

    settings = settings_from(args)
    state = _registry_state(settings)
    if args.as_of:
        snapshot_at = as_of_snapshots(state)
    else:
        chosen = {}
        for ref in args.policy:
            policy_id, _, version = ref.partition("@")
            if not version.isdigit():
                raise CopeError(f"--policy {ref!r}: use ID@VERSION")
            chosen[policy_id] = int(version)
        pinned = pinned_snapshot(state, chosen)
        settings = settings.model_copy(update={"default_policy_ids": list(chosen)})
        snapshot_at = lambda _: pinned  # noqa: E731
    partitions = [int(p) for p in args.partitions.split(",")] if args.partitions else None
    window = resolve_range(settings, _millis(args.start), _millis(args.end), partitions)
    classifier = load_classifier(settings)
    model = classifier.model_ref()
    description = {
        "from": args.start,
        "to": args.end,
        "policies": "as-of" if args.as_of else args.policy,
    }
    run_id = new_run_id()
    if args.to_topic is not None:
        topic = args.to_topic or replay_topic_name(settings, run_id)
        sink: LabelSink = open_topic_sink(settings, topic)
        manifest_path = args.manifest or Path(f"{run_id}.manifest.json")
    else:
        sink = JsonlSink(args.out)
        manifest_path = args.manifest or args.out.with_suffix(".manifest.json")
    manifest = replay(
        settings,
        window,
        classifier,
        model,
        snapshot_at,
        sink,
        description,
        manifest_path=manifest_path,
        run_id=run_id,
    )
    summary = {k: manifest[k] for k in ("run_id", "counts", "seconds", "output")}
    print(json.dumps({**summary, "manifest": str(manifest_path)}))
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    """Find a content id's live label, re-score it as recorded, say whether it reproduces."""
    from worker.consumers.replay import fetch_record, read_label_topic
    from worker.model.runtime import load_classifier
    from worker.pipeline import process_batch
    from worker.policies import pinned_snapshot

    settings = settings_from(args)
    found = [
        row
        for row in read_label_topic(settings, settings.labels_topic)
        if row.get("content_id") == args.content_id
    ]
    if not found:
        raise CopeError(f"no label for content id {args.content_id!r} in {settings.labels_topic}")
    label = found[-1]
    state = _registry_state(settings)
    recorded = {r["policy_id"]: r for r in label["results"]}
    snapshot = pinned_snapshot(state, {p: r["policy_version"] for p, r in recorded.items()})
    classifier = load_classifier(settings)
    current = classifier.model_ref().model_dump()
    differs = [
        key
        for key, value in label["model"].items()
        if value is not None and key in current and current[key] != value
    ]
    if differs:
        raise CopeError(
            f"the label was made by model {label['model']['name']} "
            f"{label['model']['version']} ({', '.join(differs)} differ from the "
            "model loaded here); point COPE_MODEL_DIR (and COPE_WINDOW_STRIDE) at "
            "that model to reproduce it"
        )
    source = label["source"]
    record = fetch_record(settings, source["topic"], source["partition"], source["offset"])
    model = classifier.model_ref()
    outcome = process_batch(
        [record],
        snapshot,
        classifier,
        model,
        default_policy_ids=list(recorded),
        max_text_chars=settings.max_text_chars,
    )
    if not outcome.labels:
        raise CopeError("the source record no longer yields a label (was it rewritten?)")
    rescored = {r["policy_id"]: r for r in json.loads(outcome.labels[0][1])["results"]}
    policies = []
    for policy_id, before in recorded.items():
        applied = snapshot.policies[policy_id]
        policies.append(
            {
                "policy_id": policy_id,
                "version": before["policy_version"],
                "sha256_matches": applied.sha256 == before["policy_sha256"],
                "recorded_score": before["score"],
                "rescored": rescored[policy_id]["score"],
                "reproduces": rescored[policy_id]["score"] == before["score"]
                and rescored[policy_id]["decision"] == before["decision"],
                "policy_text": applied.text,
            }
        )
    report = {
        "content_id": args.content_id,
        "source": source,
        "model": label["model"],
        "reproduces": all(p["reproduces"] and p["sha256_matches"] for p in policies),
        "policies": policies,
    }
    print(json.dumps(report, indent=2))
    return 0 if report["reproduces"] else 1


def _cmd_monitor(args: argparse.Namespace) -> int:
    from worker.consumers.monitor import run_monitor
    from worker.observability import configure_logging

    configure_logging()
    return run_monitor(settings_from(args), from_beginning=args.from_beginning)


def register(commands: Any) -> None:
    """Add the worker, topics and demo commands."""
    worker = commands.add_parser("worker", help="the streaming worker")
    worker_commands = worker.add_subparsers(dest="worker_command", required=True)
    run = worker_commands.add_parser("run", help="consume, label, produce (settings: COPE_*)")
    model_options(run)
    run.set_defaults(handler=_cmd_worker_run)

    topics = commands.add_parser("topics", help="Kafka topics")
    topics_commands = topics.add_subparsers(dest="topics_command", required=True)
    create = topics_commands.add_parser("create", help="create content/label/DLQ topics")
    create.add_argument("--partitions", type=int, default=3)
    create.set_defaults(handler=_cmd_topics_create)

    demo = commands.add_parser("demo", help="publish sample events and watch their labels")
    demo.add_argument("files", type=Path, nargs="+", help="JSONL content events")
    demo.add_argument("--timeout", type=float, default=300.0)
    demo.set_defaults(handler=_cmd_demo_feed)

    replay = commands.add_parser(
        "replay",
        help="label a time range again, for audits; `replay diff A B --out DIR` compares labels",
    )
    replay.add_argument(
        "rest",
        nargs="*",
        metavar="diff A B",
        help="compare two label sets (JSONL files or topic:NAME)",
    )
    replay.add_argument("--from", dest="start", help="ISO-8601 start (default: the beginning)")
    replay.add_argument("--to", dest="end", help="ISO-8601 end, exclusive (default: now)")
    replay.add_argument("--partitions", help="comma-separated partitions (default: all)")
    which = replay.add_mutually_exclusive_group()
    which.add_argument(
        "--as-of", action="store_true", help="each event under the versions active at its time"
    )
    which.add_argument(
        "--policy", action="append", metavar="ID@VERSION", help="exact versions (repeatable)"
    )
    replay.add_argument("--out", type=Path, help="labels JSONL (+ .manifest.json); diff: a folder")
    replay.add_argument(
        "--to-topic",
        nargs="?",
        const="",
        metavar="NAME",
        help="labels to a new topic instead (default name: <labels topic>.<run id>)",
    )
    replay.add_argument(
        "--manifest",
        type=Path,
        help="where the run manifest goes (default: beside --out, else ./<run id>.manifest.json)",
    )
    model_options(replay)
    replay.set_defaults(handler=_cmd_replay)

    monitor = commands.add_parser(
        "monitor",
        help="rollout monitor: flag rates and live/shadow agreement per window, with alerts",
        description="Serves /rates (JSON) and /metrics (Prometheus) on COPE_MONITOR_WEB_PORT; "
        "window, alert delta and minimum events come from COPE_MONITOR_* settings.",
    )
    monitor.add_argument(
        "--from-beginning",
        action="store_true",
        help="count the label topics from their start (default: from now on)",
    )
    monitor.set_defaults(handler=_cmd_monitor)

    audit = commands.add_parser("audit", help="re-score a live label as recorded and compare")
    audit.add_argument("content_id")
    model_options(audit)
    audit.set_defaults(handler=_cmd_audit)
