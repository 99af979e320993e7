"""How far does the calibrated cut move between samples of the same calibration pairs?

The calibration pairs of each model are scored once (raw logits, before the
manifest's calibration), then resampled with replacement. Two rules place the
cut on every resample: the pairs' own F1-best cut on the Platt probabilities
(the rule before 0.37.2) and half the best F1 (``fit_calibration``'s). For
each rule: the cut on all pairs (raw logits), the spread of the cut across
resamples, and F1 of the cut on the pairs each resample left out.

    .venv/bin/python benchmarks/calibration_stability.py MODEL_DIR [...] [--per-area 120]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_runtime import _cpu_model  # noqa: E402
from worker.model.calibrate import best_threshold, fit_calibration, fit_platt, logit  # noqa: E402
from worker.model.dataset import DEFAULT_DATA_DIR, load_all  # noqa: E402
from worker.model.policy_variants import generate_variants  # noqa: E402
from worker.model.runtime import load_classifier  # noqa: E402
from worker.model.train_config import TrainConfig  # noqa: E402
from worker.model.validation import calibration_pairs  # noqa: E402
from worker.settings import Settings  # noqa: E402

Rule = Callable[[np.ndarray, np.ndarray], float]


def f1_best_cut(raw: np.ndarray, labels: np.ndarray) -> float:
    """The pairs' own F1-best cut, in raw logits."""
    scale, bias = fit_platt(raw.tolist(), labels.tolist())
    probabilities = 1 / (1 + np.exp(-(scale * raw + bias)))
    cut = best_threshold(probabilities.tolist(), labels.tolist())
    return float((logit([cut])[0] - bias) / scale)


def half_best_f1_cut(raw: np.ndarray, labels: np.ndarray) -> float:
    """``fit_calibration``'s cut, in raw logits."""
    scale, bias = fit_calibration(raw.tolist(), labels.tolist())
    return -bias / scale


def _f1(raw: np.ndarray, labels: np.ndarray, cut: float) -> float:
    flagged = raw >= cut
    right = int(np.sum(flagged & (labels == 1)))
    return 2 * right / max(1, int(flagged.sum()) + int(labels.sum()))


def raw_logits(model_dir: Path, per_area: int) -> tuple[np.ndarray, np.ndarray]:
    """Calibration pairs' logits before the manifest's calibration, and their labels."""
    classifier = load_classifier(Settings(model_dir=model_dir, provider="cpu"))
    defaults = TrainConfig(out="", policies=())
    variants = generate_variants(
        defaults.variants_per_area, seed=defaults.seed, fits=classifier.tokenizer.fits_policy
    )
    pairs = calibration_pairs(load_all(DEFAULT_DATA_DIR), variants, per_area)
    raw = logit(classifier.predict([(pair.policy, pair.text) for pair in pairs]))
    calibration = classifier.manifest.calibration
    if calibration is not None:
        raw = (raw - calibration.bias) / calibration.scale
    return raw, np.array([pair.label for pair in pairs])


def compare(raw: np.ndarray, labels: np.ndarray, resamples: int) -> dict[str, object]:
    """Each rule's cut on all pairs, its spread over resamples and its out-of-sample F1."""
    rules: dict[str, Rule] = {"f1_best": f1_best_cut, "half_best_f1": half_best_f1_cut}
    rng = np.random.default_rng(0)
    cuts: dict[str, list[float]] = {name: [] for name in rules}
    held_out_f1: dict[str, list[float]] = {name: [] for name in rules}
    for _ in range(resamples):
        drawn = rng.integers(0, len(labels), len(labels))
        left = np.setdiff1d(np.arange(len(labels)), drawn)
        for name, rule in rules.items():
            cut = rule(raw[drawn], labels[drawn])
            cuts[name].append(cut)
            held_out_f1[name].append(_f1(raw[left], labels[left], cut))
    return {
        name: {
            "cut": round(rule(raw, labels), 3),
            "cut_sd": round(statistics.pstdev(cuts[name]), 3),
            "cut_p5_p95": [round(float(q), 3) for q in np.percentile(cuts[name], [5, 95])],
            "held_out_f1_median": round(statistics.median(held_out_f1[name]), 4),
        }
        for name, rule in rules.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+", help="model folders")
    parser.add_argument("--per-area", type=int, default=120)
    parser.add_argument("--resamples", type=int, default=200)
    args = parser.parse_args()
    models = []
    for folder in args.models:
        raw, labels = raw_logits(folder, args.per_area)
        between = (raw > -6) & (raw < 6)
        models.append(
            {
                "model": str(folder),
                "pairs": len(labels),
                "positive_share": round(float(labels.mean()), 4),
                "pairs_between_minus6_and_6": int(between.sum()),
                "rules": compare(raw, labels, args.resamples),
            }
        )
    result = {"machine": _cpu_model(), "per_area": args.per_area, "models": models}
    print(json.dumps(result, indent=2))
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    out = ROOT / "benchmarks" / "results" / f"calibration-stability-{stamp}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
