"""The ``cope`` command line: one entry point, a subcommand per job.

Every deliberate failure is a :class:`CopeError`; it is printed as one clear
line and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from policy_registry import library_ids, library_policy
from policy_registry.cli import add_policy_commands
from worker.errors import CopeError
from worker.model.manifest import Variant
from worker.settings import Settings

__all__ = ["main"]

EXIT_ERROR = 2


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("model_dir", "provider", "max_batch_size", "intra_op_threads"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return Settings(**overrides)


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", type=Path, help="model folder (default: shipped model)")
    parser.add_argument("--provider", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--max-batch-size", type=int)
    parser.add_argument("--intra-op-threads", type=int)


def _cmd_export(args: argparse.Namespace) -> int:
    from worker.model.export import base_checkpoint_dir, export_model

    variants: tuple[Variant, ...] = tuple(args.variants.split(","))
    for variant in variants:
        if variant not in ("fp32", "fp16", "int8"):
            raise CopeError(f"unknown variant {variant!r}; choose from fp32, fp16, int8")
    result = export_model(
        args.checkpoint or base_checkpoint_dir(),
        args.out,
        name=args.name,
        version=args.version,
        max_length=args.max_length,
        max_policy_tokens=args.max_policy_tokens,
        threshold=args.threshold,
        variants=variants,
        seed=args.seed,
    )
    print(
        json.dumps(
            {
                "out": str(args.out),
                "fused_ops": result.fused_ops,
                "variants": sorted(result.manifest.variants),
            },
            indent=2,
        )
    )
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from worker.model.train import main as train_main

    forwarded = [
        str(args.out),
        "--steps",
        str(args.steps),
        "--batch-size",
        str(args.batch_size),
        "--max-length",
        str(args.max_length),
        "--policies",
        args.policies,
    ]
    if args.data_dir:
        forwarded += ["--data-dir", args.data_dir]
    if args.stop_at:
        forwarded += ["--stop-at", str(args.stop_at)]
    train_main(forwarded)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    import onnxruntime as ort

    from worker.model.manifest import load_manifest

    settings = _settings(args)
    manifest = load_manifest(settings.model_dir)
    manifest.tokenizer.verified_path(settings.model_dir)
    files = {}
    for variant, model_file in sorted(manifest.variants.items()):
        path = model_file.verified_path(settings.model_dir)
        files[variant] = {
            "file": model_file.file,
            "sha256": model_file.sha256,
            "bytes": path.stat().st_size,
            "verified": True,
        }
    info = {
        **manifest.model_dump(exclude={"variants", "tokenizer"}),
        "model_dir": str(settings.model_dir),
        "tokenizer_sha256": manifest.tokenizer.sha256,
        "variants": files,
        "onnxruntime": ort.__version__,
        "available_providers": ort.get_available_providers(),
    }
    print(json.dumps(info, indent=2))
    return 0


def _read_texts(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(id, text) from positional texts, or from a JSONL / plain-text file or stdin."""
    texts = [(f"arg-{i}", text) for i, text in enumerate(args.texts)]
    if args.input is None:
        return texts
    handle = sys.stdin if args.input == "-" else open(args.input, encoding="utf-8")  # noqa: SIM115
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            if not line.lstrip().startswith("{"):
                texts.append((f"line-{number}", line.rstrip("\n")))
                continue
            try:
                record = json.loads(line)
                texts.append((str(record.get("id", f"line-{number}")), str(record["text"])))
            except (json.JSONDecodeError, KeyError, AttributeError) as exc:
                raise CopeError(
                    f'{args.input}:{number}: expected a JSON object with a "text" field '
                    f"({exc.__class__.__name__}: {exc})"
                ) from exc
    return texts


def _policy_text(spec: str) -> tuple[str, str]:
    """A policy given as a library id or a file path: (name, text)."""
    path = Path(spec)
    if path.suffix == ".md" or path.is_file():
        try:
            return path.stem, path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CopeError(f"cannot read policy file {spec}: {exc}") from exc
    return spec, library_policy(spec)


def _cmd_label(args: argparse.Namespace) -> int:
    from worker.model.runtime import load_classifier
    from worker.model.tokenize import sha256_text

    policies = [_policy_text(spec) for spec in args.policy]
    texts = _read_texts(args)
    if not texts:
        raise CopeError("no texts to label: give TEXT arguments or --input FILE")
    classifier = load_classifier(_settings(args))
    threshold = classifier.manifest.threshold if args.threshold is None else args.threshold
    pairs = [(policy, text) for _, text in texts for _, policy in policies]
    scores = classifier.predict(pairs).reshape(len(texts), len(policies))
    for (text_id, text), row in zip(texts, scores, strict=True):
        results = [
            {
                "policy": name,
                "policy_sha256": sha256_text(policy),
                "score": round(float(s), 6),
                "decision": bool(s >= threshold),
                "threshold": threshold,
            }
            for (name, policy), s in zip(policies, row, strict=True)
        ]
        if args.format == "table":
            flags = "  ".join(
                f"{r['policy']}={r['score']:.2f}{'*' if r['decision'] else ''}" for r in results
            )
            print(f"{text_id:>10}  {flags}  | {text[:60]!r}")
        else:
            print(
                json.dumps(
                    {
                        "id": text_id,
                        "results": results,
                        "model": classifier.manifest.name,
                        "model_version": classifier.manifest.version,
                        "model_sha256": classifier.model_sha256,
                    }
                )
            )
    return 0


def _policy_source(settings: Settings, metrics: Any, health: Any, check: Any) -> Any:
    """Per-batch snapshots: the registry (read to its end first) or the library."""
    from policy_registry.signing import Verifier
    from policy_registry.store import RegistryReader, check_registry_topic
    from worker.policies import RegistryPolicies, library_snapshot

    if settings.policy_source == "library":
        snapshot = library_snapshot(settings.default_policy_ids, settings.decision_threshold)
        for policy in snapshot.policies.values():  # refuse at start-up, not per event
            check(policy.text)
        return lambda: snapshot
    check_registry_topic(settings.kafka_bootstrap, settings.registry_topic, settings.kafka_options)
    reader = RegistryReader(
        settings.kafka_bootstrap,
        settings.registry_topic,
        settings.kafka_options,
        on_skip=lambda reason: metrics.registry_skipped.inc(),
        verifier=(
            Verifier.from_pem(settings.registry_public_key)
            if settings.registry_public_key
            else None
        ),
    )
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
    from worker.schemas import ModelRef

    configure_logging()
    settings = _settings(args)
    metrics, health = WorkerMetrics(), Health.for_settings(settings)
    if settings.metrics_port:
        serve_http(settings.metrics_port, metrics, health)
    classifier = load_classifier(settings)
    model = ModelRef(
        name=classifier.manifest.name,
        version=classifier.manifest.version,
        sha256=classifier.model_sha256,
    )
    snapshot = _policy_source(settings, metrics, health, classifier.tokenizer.encode_policy)
    worker = LiveWorker(settings, classifier, model, snapshot, metrics, health)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: worker.stop())
    worker.run()
    return 0


def _cmd_topics_create(args: argparse.Namespace) -> int:
    from worker.consumers.admin import ensure_topics

    created = ensure_topics(_settings(args), partitions=args.partitions)
    print(json.dumps({"created": created}))
    return 0


def _cmd_demo_feed(args: argparse.Namespace) -> int:
    from worker.consumers.demo import feed_and_watch

    labelled = feed_and_watch(_settings(args), args.files, timeout_s=args.timeout)
    print(f"{labelled} labels received")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    import time
    from dataclasses import asdict

    from worker.model.evaluate import binary_metrics, read_rows
    from worker.model.runtime import load_classifier
    from worker.model.tokenize import sha256_text

    _, policy = _policy_text(args.policy)
    rows = read_rows(args.data, args.label_field, args.text_field, args.id_field)
    if not rows:
        raise CopeError(f"{args.data}: no rows with a {args.label_field!r} field")
    classifier = load_classifier(_settings(args))
    threshold = classifier.manifest.threshold if args.threshold is None else args.threshold
    began = time.perf_counter()
    scores = classifier.predict([(policy, row.text) for row in rows]).tolist()
    pairs_per_s = len(rows) / (time.perf_counter() - began)
    metrics = binary_metrics([row.label for row in rows], scores, threshold)
    if args.predictions_out:
        with open(args.predictions_out, "w", encoding="utf-8") as handle:
            for row, score in zip(rows, scores, strict=True):
                handle.write(
                    json.dumps({"id": row.row_id, "score": score, "label": int(score >= threshold)})
                    + "\n"
                )
    report = {
        **asdict(metrics),
        "model_version": classifier.manifest.version,
        "policy_sha256": sha256_text(policy),
        "pairs_per_s": round(pairs_per_s, 2),
    }
    if args.json:
        print(json.dumps(report))
    else:
        for name, value in report.items():
            print(f"{name:>14}: {value}")
    return 0


def _second_eye(args: argparse.Namespace, classifier: Any, rows: list[tuple[str, str]]) -> Any:
    """The independent labeler the draft is checked against."""
    from worker.model.evaluate import read_rows, read_scores

    if args.paraphrase:
        paraphrase = _policy_text(str(args.paraphrase))[1]
        return lambda texts: classifier.predict([(paraphrase, t) for t in texts]).tolist()
    if args.gold:
        gold = {
            row.row_id: float(row.label)
            for row in read_rows(args.data, args.gold, args.text_field, args.id_field)
        }
        source, table = f"gold field {args.gold!r}", gold
    else:
        source, table = str(args.teacher_labels), read_scores(args.teacher_labels)
    missing = [row_id for row_id, _ in rows if row_id not in table]
    if missing:
        raise CopeError(f"{source} has no label for {len(missing)} rows (first: {missing[0]})")
    return lambda texts: [table[row_id] for row_id, _ in rows]


def _cmd_policy_check(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from policy_registry.binocular import binocular_check
    from policy_registry.documents import parse_policy
    from worker.model.evaluate import read_texts
    from worker.model.runtime import load_classifier

    _, draft = _policy_text(args.file)
    parse_policy(draft)
    rows = read_texts(args.data, args.text_field, args.id_field)
    if not rows:
        raise CopeError(f"{args.data}: no rows")
    classifier = load_classifier(_settings(args))
    eye_a = lambda texts: classifier.predict([(draft, t) for t in texts]).tolist()  # noqa: E731
    report = binocular_check(rows, eye_a, _second_eye(args, classifier, rows), args.threshold)
    summary = asdict(report)
    summary["disagreements"] = summary["disagreements"][: args.top]
    print(json.dumps(summary, indent=2))
    return 0


def _registry_connection(args: argparse.Namespace) -> Any:
    """The registry named by the settings, sized by the model's tokenizer."""
    from policy_registry.cli import RegistryConnection
    from worker.model.manifest import load_manifest
    from worker.model.tokenize import PairTokenizer

    settings = _settings(args)
    manifest = load_manifest(settings.model_dir)
    tokenizer = PairTokenizer(
        manifest.tokenizer.verified_path(settings.model_dir),
        max_length=manifest.max_length,
        max_policy_tokens=manifest.max_policy_tokens,
        window_stride=settings.window_stride,
    )
    return RegistryConnection(
        settings.kafka_bootstrap,
        settings.registry_topic,
        settings.kafka_options,
        tokenizer.count_tokens,
        manifest.max_policy_tokens,
        settings.registry_signing_key,
        settings.registry_public_key,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cope", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    model = commands.add_parser("model", help="export and inspect the classifier")
    model_commands = model.add_subparsers(dest="model_command", required=True)
    export = model_commands.add_parser("export", help="checkpoint -> fused ONNX variants")
    export.add_argument(
        "--checkpoint",
        type=Path,
        help="Hugging Face checkpoint folder (default: shipped base encoder)",
    )
    export.add_argument("--out", type=Path, required=True)
    export.add_argument("--name", default="cope-student-minilm")
    export.add_argument("--version", default="0.0.0")
    export.add_argument("--max-length", type=int, default=512)
    export.add_argument("--max-policy-tokens", type=int, default=400)
    export.add_argument("--threshold", type=float, default=0.5)
    export.add_argument("--variants", default="fp32,fp16,int8")
    export.add_argument("--seed", type=int, default=0)
    export.set_defaults(handler=_cmd_export)
    train = model_commands.add_parser(
        "train", help="fine-tune on contradictory pairs (resumable; run in the background)"
    )
    train.add_argument("out", type=Path, help="run folder; an existing run resumes")
    train.add_argument("--steps", type=int, default=1000, help="length of the whole schedule")
    train.add_argument("--stop-at", type=int, help="end this run at this step")
    train.add_argument("--batch-size", type=int, default=16)
    train.add_argument("--max-length", type=int, default=512)
    train.add_argument("--data-dir", help="labelled data (default: ../shared/data)")
    train.add_argument(
        "--policies",
        default="sexual,hate,violence,harassment,self-harm,sexual-minors,hate-threatening,"
        "violence-graphic,offensive-language",
    )
    train.set_defaults(handler=_cmd_train)
    info = model_commands.add_parser("info", help="manifest, verified hashes, providers")
    _model_options(info)
    info.set_defaults(handler=_cmd_info)

    worker = commands.add_parser("worker", help="the streaming worker")
    worker_commands = worker.add_subparsers(dest="worker_command", required=True)
    run = worker_commands.add_parser("run", help="consume, label, produce (settings: COPE_*)")
    _model_options(run)
    run.set_defaults(handler=_cmd_worker_run)

    verbs = add_policy_commands(commands, _registry_connection)
    check = verbs.add_parser("check", help="binocular check: do two labelers agree on a draft?")
    check.add_argument("file", help="draft policy (.md)")
    check.add_argument("--data", type=Path, required=True, help="sample JSONL (id, text)")
    check.add_argument("--text-field", default="text")
    check.add_argument("--id-field", default="id")
    eyes = check.add_mutually_exclusive_group(required=True)
    eyes.add_argument("--gold", metavar="FIELD", help="second eye: gold 0/1 labels in the sample")
    eyes.add_argument(
        "--teacher-labels",
        type=Path,
        metavar="FILE",
        help="second eye: JSONL of {id, score} from a teacher",
    )
    eyes.add_argument(
        "--paraphrase",
        type=Path,
        metavar="FILE",
        help="second eye: the same model under this rewording of the policy",
    )
    check.add_argument("--threshold", type=float, default=0.5)
    check.add_argument("--top", type=int, default=20, help="disagreements to list")
    _model_options(check)
    check.set_defaults(handler=_cmd_policy_check)

    topics = commands.add_parser("topics", help="Kafka topics")
    topics_commands = topics.add_subparsers(dest="topics_command", required=True)
    create = topics_commands.add_parser("create", help="create content/label/DLQ topics")
    create.add_argument("--partitions", type=int, default=3)
    create.set_defaults(handler=_cmd_topics_create)

    evaluate = commands.add_parser("eval", help="accuracy under one policy on labelled JSONL")
    evaluate.add_argument("--policy", required=True, help="policy .md file or library id")
    evaluate.add_argument("--data", type=Path, required=True)
    evaluate.add_argument("--label-field", required=True)
    evaluate.add_argument("--text-field", default="text")
    evaluate.add_argument("--id-field", default="id")
    evaluate.add_argument("--threshold", type=float)
    evaluate.add_argument("--predictions-out", type=Path)
    evaluate.add_argument("--json", action="store_true")
    _model_options(evaluate)
    evaluate.set_defaults(handler=_cmd_eval)

    demo = commands.add_parser("demo", help="publish sample events and watch their labels")
    demo.add_argument("files", type=Path, nargs="+", help="JSONL content events")
    demo.add_argument("--timeout", type=float, default=300.0)
    demo.set_defaults(handler=_cmd_demo_feed)

    label = commands.add_parser("label", help="score texts under policies")
    label.add_argument("texts", nargs="*", help="texts to label")
    label.add_argument(
        "--policy",
        action="append",
        required=True,
        help=f"library id ({', '.join(library_ids())}) or a policy .md file; repeatable",
    )
    label.add_argument("--input", help='JSONL ({"id", "text"}) or plain text file; - for stdin')
    label.add_argument("--threshold", type=float, help="decision threshold (default: manifest)")
    label.add_argument("--format", choices=["jsonl", "table"], default="jsonl")
    _model_options(label)
    label.set_defaults(handler=_cmd_label)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; a CopeError becomes a one-line message and exit 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except CopeError as exc:
        print(f"cope: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ValidationError as exc:  # a COPE_* setting out of range
        print(f"cope: error: invalid setting: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        print(f"cope: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
