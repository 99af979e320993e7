"""``cope model ...``, ``cope label`` and ``cope eval``: the classifier offline."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from policy_registry import library_ids, library_policy
from worker.cli.common import model_options, policy_text, settings_from
from worker.errors import CopeError
from worker.model.manifest import Variant

__all__ = ["register"]


def _cmd_export(args: argparse.Namespace) -> int:
    from worker.model.export import base_checkpoint_dir, export_model

    variants: tuple[Variant, ...] = tuple(args.variants.split(","))
    for variant in variants:
        if variant not in ("fp32", "fp16", "int8"):
            raise CopeError(f"unknown variant {variant!r}; choose from fp32, fp16, int8")
    if args.rounding_pairs < 0:
        raise CopeError(f"--rounding-pairs must be 0 or more, not {args.rounding_pairs}")
    pairs: list[tuple[str, str]] = []
    if "int8" in variants and args.rounding_pairs > 0:
        from worker.model.dataset import DEFAULT_DATA_DIR, load_all
        from worker.model.quantize import rounding_pairs

        try:
            texts = load_all(Path(args.data_dir or DEFAULT_DATA_DIR))
        except CopeError as exc:
            raise CopeError(f"{exc}; or export with --rounding-pairs 0") from exc
        pairs = rounding_pairs(texts, args.rounding_pairs)
        if not pairs:
            raise CopeError(
                "no training-split text under a library policy to round int8 weights"
                " against; export with --rounding-pairs 0"
            )
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
        rounding_pairs=pairs,
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


def _cmd_recover(args: argparse.Namespace) -> int:
    from worker.model.recover import recover_checkpoint

    model_dir = settings_from(args).model_dir
    variant = recover_checkpoint(model_dir, args.out, variant=args.variant)
    print(json.dumps({"model_dir": str(model_dir), "variant": variant, "out": str(args.out)}))
    return 0


def _cmd_average(args: argparse.Namespace) -> int:
    from worker.model.average import average_checkpoints

    provenance = average_checkpoints(args.checkpoint, args.out, weights=args.weight or None)
    print(json.dumps({"out": str(args.out), **provenance}))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from worker.model.train import run_from_arguments

    run_from_arguments(args)
    return 0


def _validation_inputs(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """Classifier, labelled texts and the generated variants training used."""
    from worker.model.dataset import DEFAULT_DATA_DIR, load_all
    from worker.model.policy_variants import generate_variants
    from worker.model.runtime import load_classifier

    classifier = load_classifier(settings_from(args), variant=args.variant)
    texts = load_all(Path(args.data_dir or DEFAULT_DATA_DIR))
    variants = generate_variants(
        args.variants_per_area, seed=args.variant_seed, fits=classifier.tokenizer.fits_policy
    )
    return classifier, texts, variants


def _cmd_validate(args: argparse.Namespace) -> int:
    """Seen and unseen policies, a held-out harm area and HateCheck flips, on held-out content."""
    from worker.model.policy_variants import edit_probes
    from worker.model.validation import validation_report

    classifier, texts, variants = _validation_inputs(args)
    probes = edit_probes(
        "hate",
        args.probes_per_edit,
        [variant.text for variant in variants],
        seed=args.variant_seed,
        fits=classifier.tokenizer.fits_policy,
    )
    report = validation_report(
        texts,
        variants,
        lambda pairs: classifier.predict(pairs).tolist(),
        limit=args.limit,
        threshold=classifier.manifest.threshold,
        probes=probes,
        sweep=args.sweep,
    )
    report = {
        "model": classifier.manifest.name,
        "model_version": classifier.manifest.version,
        "variant": classifier.variant,
        **report,
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    """Fit one scale and bias for all policies and write them into the manifest."""
    import numpy as np

    from worker.model.calibrate import fit_calibration, logit
    from worker.model.manifest import Calibration
    from worker.model.validation import calibration_pairs

    classifier, texts, variants = _validation_inputs(args)
    pairs = calibration_pairs(texts, variants, args.per_area)
    scores = classifier.predict([(pair.policy, pair.text) for pair in pairs])
    old = classifier.manifest.calibration
    raw = logit(scores)
    if old is not None:
        raw = (raw - old.bias) / old.scale
    labels = [pair.label for pair in pairs]
    scale, bias = fit_calibration(raw.tolist(), labels)
    calibration = Calibration(
        scale=round(scale, 6),
        bias=round(bias, 6),
        pairs=len(pairs),
        policies=len({pair.policy_id for pair in pairs}),
    )
    manifest = classifier.manifest.model_copy(update={"calibration": calibration})
    manifest.write(settings_from(args).model_dir)
    flagged = np.asarray(raw) * scale + bias >= 0
    agreement = float(np.mean(flagged == np.asarray(labels, dtype=bool)))
    print(
        json.dumps(
            {
                **calibration.model_dump(),
                "positive_share": round(float(np.mean(labels)), 4),
                "accuracy_at_threshold": round(agreement, 4),
            }
        )
    )
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    import onnxruntime as ort

    from worker.model.manifest import load_manifest

    settings = settings_from(args)
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


def _cmd_label(args: argparse.Namespace) -> int:
    from worker.model.runtime import load_classifier
    from worker.model.tokenize import sha256_text

    policies = [policy_text(spec) for spec in args.policy]
    texts = _read_texts(args)
    if not texts:
        raise CopeError("no texts to label: give TEXT arguments or --input FILE")
    classifier = load_classifier(settings_from(args))
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


def _cmd_eval(args: argparse.Namespace) -> int:
    import time
    from dataclasses import asdict

    from worker.model.evaluate import binary_metrics, read_rows, threshold_for_precision
    from worker.model.runtime import load_classifier
    from worker.model.tokenize import sha256_text

    _, policy = policy_text(args.policy)
    target = args.target_precision
    if target is not None and not 0 < target <= 1:
        raise CopeError(f"--target-precision must be in (0, 1], got {target}")
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        raise CopeError(f"--threshold must be in [0, 1], got {args.threshold}")
    rows = read_rows(args.data, args.label_field, args.text_field, args.id_field)
    if not rows:
        raise CopeError(f"{args.data}: no rows with a {args.label_field!r} field")
    classifier = load_classifier(settings_from(args))
    threshold = classifier.manifest.threshold if args.threshold is None else args.threshold
    began = time.perf_counter()
    scores = classifier.predict([(policy, row.text) for row in rows]).tolist()
    pairs_per_s = len(rows) / (time.perf_counter() - began)
    labels = [row.label for row in rows]
    metrics = binary_metrics(labels, scores, threshold)
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
    if target is not None:
        reached = threshold_for_precision(labels, scores, target)
        report["for_target_precision"] = {"target": target} | (
            {"threshold": None} if reached is None else asdict(reached)
        )
    if args.plot:
        from worker.model.evaluate import write_pr_plot

        title = f"{args.policy} on {args.data.name} ({classifier.manifest.version})"
        write_pr_plot(args.plot, labels, scores, threshold, title)
    if args.json:
        print(json.dumps(report))
    else:
        for name, value in report.items():
            shown = json.dumps(value) if isinstance(value, dict) else value
            print(f"{name:>14}: {shown}")
    return 0


def _cmd_teacher_label(args: argparse.Namespace) -> int:
    """Soft labels from the teacher for a pairs file: one {"id", "score"} line per row."""
    from worker.model.evaluate import json_objects
    from worker.model.teacher import EndpointTeacher, LocalTeacher

    rows = []
    for where, record in json_objects(args.pairs):
        policy = record.get("policy") or (
            library_policy(str(record["policy_id"])) if "policy_id" in record else None
        )
        text = record.get("text")
        if not isinstance(policy, str) or not isinstance(text, str):
            raise CopeError(f'{where}: needs "text" and "policy" (text) or "policy_id"')
        rows.append((str(record.get("id", where)), policy, text))
    teacher: Any
    if args.endpoint:
        teacher = EndpointTeacher(args.endpoint, args.endpoint_model)
    else:
        teacher = LocalTeacher(args.model_path, device=args.device)
    scores = teacher.score([(policy, text) for _, policy, text in rows])
    with open(args.out, "w", encoding="utf-8") as handle:
        for (row_id, _, _), score in zip(rows, scores, strict=True):
            handle.write(json.dumps({"id": row_id, "score": score}) + "\n")
    print(json.dumps({"rows": len(rows), "out": str(args.out)}))
    return 0


def _thresholds(value: str) -> tuple[float, ...]:
    """Comma-separated thresholds, each strictly between 0 and 1."""
    try:
        cuts = tuple(float(part) for part in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"thresholds must be numbers, got {value!r}") from None
    if not all(0.0 < cut < 1.0 for cut in cuts):
        raise argparse.ArgumentTypeError(f"thresholds must lie between 0 and 1, got {value!r}")
    return cuts


def _variant_options(parser: argparse.ArgumentParser) -> None:
    """Data and generated-policy options; defaults match ``cope model train``'s."""
    from worker.model.train_config import TrainConfig

    defaults = TrainConfig(out="", policies=())
    parser.add_argument("--data-dir", help="labelled data (default: ../shared/data)")
    parser.add_argument("--variant-seed", type=int, default=defaults.seed)
    parser.add_argument("--variants-per-area", type=int, default=defaults.variants_per_area)
    parser.add_argument(
        "--variant",
        choices=["fp32", "fp16", "int8"],
        help="graph to measure (default: the device's, int8 on the CPU)",
    )
    model_options(parser)


def register(commands: Any) -> None:
    """Add the model, label and eval commands."""
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
    export.add_argument(
        "--rounding-pairs",
        type=int,
        default=256,
        help="training pairs the int8 weights are rounded against (0: round to nearest)",
    )
    export.add_argument("--data-dir", help="labelled data (default: ../shared/data)")
    export.set_defaults(handler=_cmd_export)
    train = model_commands.add_parser(
        "train", help="fine-tune on contradictory pairs (resumable; run in the background)"
    )
    from worker.model.train import add_train_arguments

    add_train_arguments(train)
    train.set_defaults(handler=_cmd_train)
    average = model_commands.add_parser(
        "average", help="weighted mean of checkpoints from one ancestor (a model soup)"
    )
    average.add_argument(
        "--checkpoint", type=Path, action="append", required=True, help="repeat, two or more"
    )
    average.add_argument(
        "--weight",
        type=float,
        action="append",
        help="one per checkpoint, in order (default: equal)",
    )
    average.add_argument("--out", type=Path, required=True, help="new checkpoint folder")
    average.set_defaults(handler=_cmd_average)
    validate = model_commands.add_parser(
        "validate", help="per-policy F1 on held-out content of ../shared/data"
    )
    validate.add_argument("--limit", type=int, default=100, help="size of each group at most")
    validate.add_argument("--out", type=Path, help="also write the report here (JSON)")
    validate.add_argument(
        "--probes-per-edit",
        type=int,
        default=4,
        help="held-out hate policies carrying each edit alone, for per-edit flip figures (0: none)",
    )
    validate.add_argument(
        "--sweep",
        type=_thresholds,
        default=(),
        metavar="T,T,...",
        help="also give the headline figures at these thresholds (ranking or calibration?)",
    )
    _variant_options(validate)
    validate.set_defaults(handler=_cmd_validate)
    calibrate = model_commands.add_parser(
        "calibrate", help="fit one decision threshold for all policies into the manifest"
    )
    calibrate.add_argument(
        "--per-area", type=int, default=120, help="pairs per harm area, at the labels' own rate"
    )
    _variant_options(calibrate)
    calibrate.set_defaults(handler=_cmd_calibrate)
    recover = model_commands.add_parser(
        "recover", help="model folder -> checkpoint that `model train --init-from` continues"
    )
    recover.add_argument("--model-dir", type=Path, help="model folder (default: shipped model)")
    recover.add_argument("--out", type=Path, required=True, help="new checkpoint folder")
    recover.add_argument(
        "--variant", choices=["fp32", "fp16", "int8"], help="default: the most precise present"
    )
    recover.set_defaults(handler=_cmd_recover)
    info = model_commands.add_parser("info", help="manifest, verified hashes, providers")
    model_options(info)
    info.set_defaults(handler=_cmd_info)

    evaluate = commands.add_parser("eval", help="accuracy under one policy on labelled JSONL")
    evaluate.add_argument("--policy", required=True, help="policy .md file or library id")
    evaluate.add_argument("--data", type=Path, required=True)
    evaluate.add_argument("--label-field", required=True)
    evaluate.add_argument("--text-field", default="text")
    evaluate.add_argument("--id-field", default="id")
    evaluate.add_argument("--threshold", type=float)
    evaluate.add_argument(
        "--target-precision",
        type=float,
        help="also report the lowest threshold reaching this precision on the data",
    )
    evaluate.add_argument(
        "--plot", type=Path, help="precision-recall curve PNG, operating point marked"
    )
    evaluate.add_argument("--predictions-out", type=Path)
    evaluate.add_argument("--json", action="store_true")
    model_options(evaluate)
    evaluate.set_defaults(handler=_cmd_eval)

    teacher = model_commands.add_parser(
        "teacher-label", help="CoPE teacher scores (P(1)) for a pairs file, for distillation"
    )
    teacher.add_argument(
        "--pairs",
        type=Path,
        required=True,
        help='JSONL rows: {"id", "text", "policy" | "policy_id"}',
    )
    teacher.add_argument("--out", type=Path, required=True)
    source = teacher.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-path", type=Path, help="local causal LM folder (e.g. CoPE-A-9B)")
    source.add_argument("--endpoint", help="OpenAI-compatible server base URL")
    teacher.add_argument("--endpoint-model", default="cope-a-9b")
    teacher.add_argument("--device", default="cpu", help="torch device for --model-path")
    teacher.set_defaults(handler=_cmd_teacher_label)

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
    model_options(label)
    label.set_defaults(handler=_cmd_label)
