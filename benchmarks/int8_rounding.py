"""How far each way of rounding int8 weights moves a model's logits from its fp32 graph.

Three int8 graphs from the same fp32 graph and the same per-channel scales
rule: 8-bit weights rounded to nearest (what exports made before 7 bits; not
exact on CPUs without VNNI), 7-bit rounded to nearest, and 7-bit rounded with
error feedback against training pairs (what `cope model export` now makes).
Each scores validation pairs (library policies, content training never saw);
raw logits are compared with the fp32 graph's, so calibration plays no part.

    cope model recover --out artifacts/recovered
    cope model export --checkpoint artifacts/recovered --variants fp32 --out artifacts/rec-fp32
    .venv/bin/python benchmarks/int8_rounding.py artifacts/rec-fp32 [--pairs N] [--rounding-pairs N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.recover_fidelity import graph_logits, validation_pairs  # noqa: E402
from worker.model.dataset import DEFAULT_DATA_DIR, load_all  # noqa: E402
from worker.model.manifest import load_manifest  # noqa: E402
from worker.model.quantize import rounding_batches, rounding_pairs, to_int8  # noqa: E402
from worker.model.tokenize import PairTokenizer  # noqa: E402
from worker.settings import Settings  # noqa: E402


def _gaps(logits: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    gap = np.abs(logits - reference)
    return {
        "median_gap": round(float(np.median(gap)), 4),
        "mean_gap": round(float(gap.mean()), 4),
        "p95_gap": round(float(np.percentile(gap, 95)), 4),
        "sign_agreement": round(float(np.mean((logits >= 0) == (reference >= 0))), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="an export holding model.fp32.onnx")
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--rounding-pairs", type=int, default=256)
    args = parser.parse_args()
    manifest = load_manifest(args.model_dir)
    fp32 = args.model_dir / manifest.variant("fp32").file
    tokenizer_file = args.model_dir / manifest.tokenizer.file
    tokenizer = PairTokenizer(
        tokenizer_file,
        max_length=manifest.max_length,
        max_policy_tokens=manifest.max_policy_tokens,
        window_stride=Settings.model_fields["window_stride"].default,
    )
    pairs = validation_pairs(args.pairs)
    calibration = rounding_batches(
        tokenizer_file,
        rounding_pairs(load_all(DEFAULT_DATA_DIR), args.rounding_pairs),
        manifest.max_length,
        manifest.max_policy_tokens,
    )
    reference = graph_logits(fp32, tokenizer, pairs)
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        roundings = (
            ("8-bit, nearest", False, []),
            ("7-bit, nearest", True, []),
            ("7-bit, error feedback", True, calibration),
        )
        for index, (name, seven_bit, against) in enumerate(roundings):
            target = Path(scratch) / f"{index}.onnx"
            to_int8(fp32, target, against, seven_bit=seven_bit)
            results[name] = _gaps(graph_logits(target, tokenizer, pairs), reference)
            print(f"{name:24s} {results[name]}", flush=True)
    report = {
        "model": str(args.model_dir),
        "model_version": manifest.version,
        "pairs": args.pairs,
        "rounding_pairs": args.rounding_pairs,
        "results": results,
    }
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    out = ROOT / "benchmarks" / "results" / f"int8-rounding-{manifest.version}-{stamp}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(out)


if __name__ == "__main__":
    main()
