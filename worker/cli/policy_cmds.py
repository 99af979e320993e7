"""``cope policy ...``: the registry's verbs, wired to the model's tokenizer, and the check."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from policy_registry.cli import add_policy_commands
from worker.cli.common import model_options, policy_text, settings_from
from worker.errors import CopeError

__all__ = ["register"]


def _second_eye(args: argparse.Namespace, classifier: Any, rows: list[tuple[str, str]]) -> Any:
    """The independent labeler the draft is checked against."""
    from worker.model.evaluate import read_rows, read_scores

    if args.paraphrase:
        paraphrase = policy_text(str(args.paraphrase))[1]
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

    _, draft = policy_text(args.file)
    parse_policy(draft)
    rows = read_texts(args.data, args.text_field, args.id_field)
    if not rows:
        raise CopeError(f"{args.data}: no rows")
    classifier = load_classifier(settings_from(args))
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

    settings = settings_from(args)
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


def register(commands: Any) -> None:
    """Add ``policy`` with the registry's verbs and the binocular check."""
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
    model_options(check)
    check.set_defaults(handler=_cmd_policy_check)
