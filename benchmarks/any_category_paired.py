"""Two models' any-category F1 on the same OpenAI validation texts, with a paired interval.

The acceptance figure rests on 81 texts, so two models a few hundredths
apart may not differ at all; resampling the texts once for both models
says whether they do. Each model labels at its own calibrated threshold.

    .venv/bin/python benchmarks/any_category_paired.py artifacts/model-v0.14.0 worker/model/shipped
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from policy_registry import library_policy  # noqa: E402
from worker.model.dataset import DEFAULT_DATA_DIR, OPENAI_CATEGORIES, load_all  # noqa: E402
from worker.model.evaluate import f1_difference_interval  # noqa: E402
from worker.model.runtime import load_classifier  # noqa: E402
from worker.model.validation import any_category_texts, validation_texts  # noqa: E402
from worker.settings import Settings  # noqa: E402


def _flagged(model_dir: Path, texts: list[str]) -> tuple[str, list[bool]]:
    """The model's version and, per text, whether any library category flags it."""
    classifier = load_classifier(Settings(model_dir=model_dir, provider="cpu"), variant="int8")
    categories = list(OPENAI_CATEGORIES.values())
    pairs = [(library_policy(category), text) for text in texts for category in categories]
    scores = np.asarray(classifier.predict(pairs)).reshape(len(texts), len(categories))
    threshold = classifier.manifest.threshold
    return classifier.manifest.version, (scores.max(axis=1) >= threshold).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path, help="model folder to compare against")
    parser.add_argument("second", type=Path, help="model folder whose gain is measured")
    parser.add_argument("--resamples", type=int, default=5000)
    args = parser.parse_args()
    rows = any_category_texts(validation_texts(load_all(DEFAULT_DATA_DIR)))
    texts = [item.text for item, _ in rows]
    labels = [label for _, label in rows]
    first_version, first = _flagged(args.first, texts)
    second_version, second = _flagged(args.second, texts)
    difference, low, high = f1_difference_interval(labels, first, second, args.resamples)
    result = {
        "texts": len(texts),
        "positives": sum(labels),
        "first": {"model": str(args.first), "version": first_version},
        "second": {"model": str(args.second), "version": second_version},
        "difference": f"{second_version} minus {first_version}",
        "f1_difference": difference,
        "ci95": [low, high],
        "resamples": args.resamples,
    }
    print(json.dumps(result, indent=2))
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    name = f"any-category-paired-{first_version}-vs-{second_version}-{stamp}.json"
    (ROOT / "benchmarks" / "results" / name).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
