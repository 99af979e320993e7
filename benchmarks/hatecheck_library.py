"""HateCheck under the library hate policy: several models side by side, by functionality.

The held-out edited sections of ``cope model validate`` score HateCheck only
under generated variants; this is the plain policy a team starts from, on
every HateCheck validation text, so models can be compared on it without a
full validation run. Each model labels at its own calibrated threshold.

    .venv/bin/python benchmarks/hatecheck_library.py worker/model/shipped artifacts/model-v0.32.0
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from worker.model.dataset import DEFAULT_DATA_DIR, load_all  # noqa: E402
from worker.model.runtime import Classifier, load_classifier  # noqa: E402
from worker.model.validation import Scorer, hatecheck_library  # noqa: E402
from worker.settings import Settings  # noqa: E402


def _scorer(classifier: Classifier) -> Scorer:
    """The classifier's scores as a plain list, as the report takes them."""
    return lambda pairs: classifier.predict(pairs).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+", help="model folders")
    args = parser.parse_args()
    texts = load_all(DEFAULT_DATA_DIR)
    results = {}
    for model_dir in args.models:
        classifier = load_classifier(Settings(model_dir=model_dir, provider="cpu"), variant="int8")
        report = hatecheck_library(texts, _scorer(classifier), classifier.manifest.threshold)
        results[classifier.manifest.version] = {"model": str(model_dir), **report}
    kinds = sorted({kind for r in results.values() for kind in r["accuracy_by_functionality"]})
    width = max(9, *(len(version) + 2 for version in results))
    print(f"{'functionality':<22}" + "".join(f"{version:>{width}}" for version in results))
    for kind in ["f1", "accuracy", *kinds]:
        cells = [
            r[kind] if kind in r else r["accuracy_by_functionality"][kind]["accuracy"]
            for r in results.values()
        ]
        print(f"{kind:<22}" + "".join(f"{cell:>{width}.2f}" for cell in cells))
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    name = f"hatecheck-library-{'-vs-'.join(results)}-{stamp}.json"
    (ROOT / "benchmarks" / "results" / name).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
