"""What a `cope model recover` round trip costs: a model against its re-export.

Recovering dequantizes the int8 weights; exporting the recovered checkpoint
quantizes them again. Both int8 graphs score the same validation pairs
(library policies, content training never saw) and the raw logits are
compared, so calibration plays no part.

    cope model recover --out artifacts/recovered
    cope model export --checkpoint artifacts/recovered --variants int8 --out artifacts/rec-int8
    .venv/bin/python benchmarks/recover_fidelity.py artifacts/rec-int8 [--pairs 400]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from policy_registry import library_ids, library_policy  # noqa: E402
from worker.model.dataset import (  # noqa: E402
    DEFAULT_DATA_DIR,
    load_all,
    split_of,
)
from worker.model.manifest import load_manifest  # noqa: E402
from worker.model.runtime import load_classifier, pad_batch  # noqa: E402
from worker.model.tokenize import PairTokenizer  # noqa: E402
from worker.settings import SHIPPED_MODEL_DIR, Settings  # noqa: E402


def validation_pairs(count: int) -> list[tuple[str, str]]:
    """Validation texts, each under the library policy of its first labelled area."""
    ids = set(library_ids())
    texts = [
        item
        for item in load_all(DEFAULT_DATA_DIR)
        if item.text and split_of(item.content_id) == "validation" and set(item.labels) & ids
    ]
    random.Random(0).shuffle(texts)
    return [(library_policy(min(set(t.labels) & ids)), t.text) for t in texts[:count]]


def graph_logits(graph: Path, tokenizer: PairTokenizer, pairs: list[tuple[str, str]]) -> np.ndarray:
    """Raw logits of one ONNX graph, one per window row, on the CPU."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    rows = tokenizer.rows(pairs)
    batches = [pad_batch(rows[i : i + 16], tokenizer.pad_id) for i in range(0, len(rows), 16)]
    return np.concatenate([session.run(["logits"], feed)[0].reshape(-1) for feed in batches])


def _logits(model_dir: Path, pairs: list[tuple[str, str]]) -> np.ndarray:
    classifier = load_classifier(Settings(model_dir=model_dir, provider="cpu"), variant="int8")
    graph = model_dir / classifier.manifest.variant("int8").file
    return graph_logits(graph, classifier.tokenizer, pairs)


def _shown(folder: Path) -> str:
    """A folder relative to the repository where it is inside it."""
    resolved = folder.resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recovered", type=Path, help="the recovered checkpoint's int8 export")
    parser.add_argument("--original", type=Path, default=SHIPPED_MODEL_DIR)
    parser.add_argument("--pairs", type=int, default=400)
    args = parser.parse_args()
    pairs = validation_pairs(args.pairs)
    original, recovered = _logits(args.original, pairs), _logits(args.recovered, pairs)
    gap = np.abs(original - recovered)
    result = {
        "original": _shown(args.original),
        "original_version": load_manifest(args.original).version,
        "recovered": _shown(args.recovered),
        "window_rows": len(gap),
        "median_abs_logit_gap": round(float(np.median(gap)), 4),
        "p95_abs_logit_gap": round(float(np.percentile(gap, 95)), 4),
        "max_abs_logit_gap": round(float(gap.max()), 4),
        "sign_agreement": round(float(np.mean((original >= 0) == (recovered >= 0))), 4),
        "pearson": round(float(np.corrcoef(original, recovered)[0, 1]), 4),
    }
    print(json.dumps(result, indent=2))
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    out = ROOT / "benchmarks" / "results" / f"recover-fidelity-{stamp}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
