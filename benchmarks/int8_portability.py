"""Does this CPU compute an int8 graph's integers exactly? If not, labels depend on the machine.

ONNX Runtime's uint8 x int8 kernels on x86 CPUs without VNNI add products in
pairs in int16, which saturates when weights use all 8 bits; VNNI CPUs add in
int32. Each model's int8 graph, as this CPU runs it, is compared with its exact
twin: the same graph with every integer weight moved to uint8 (w + 128, zero
point 128), whose uint8 x uint8 kernels widen to 16 bits and add in 32 on every
x86 CPU. The twin computes what any exact CPU computes, so the gap between the
two is the gap between this machine and a VNNI one. Validation pairs under
library policies; labels at each model's calibrated cut.

    .venv/bin/python benchmarks/int8_portability.py MODEL_DIR [MODEL_DIR ...] [--pairs 400]
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

from benchmarks.bench_runtime import _cpu_model  # noqa: E402
from benchmarks.recover_fidelity import graph_logits, validation_pairs  # noqa: E402
from worker.model.runtime import load_classifier  # noqa: E402
from worker.settings import Settings  # noqa: E402

# Integer matmuls and where their weight and weight zero point sit among the inputs.
_WEIGHT_INPUTS = {"MatMulInteger": (1, 3), "QAttention": (1, 7)}


def _cpu_flags() -> dict[str, bool]:
    """The instruction sets that decide which int8 kernels ONNX Runtime picks."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return {}
    flags = next(
        (set(line.split(":", 1)[1].split()) for line in lines if line.startswith("flags")), set()
    )
    return {name: name in flags for name in ("avx2", "avx512bw", "avx512_vnni", "avx_vnni")}


def exact_twin(graph: Path, out: Path) -> int:
    """Write the uint8-weight twin of an int8 graph; return the largest weight magnitude."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(graph))
    index = {tensor.name: i for i, tensor in enumerate(model.graph.initializer)}
    shifted: set[str] = set()
    largest = 0
    for node in model.graph.node:
        if node.op_type not in _WEIGHT_INPUTS:
            continue
        weight_at, zero_at = _WEIGHT_INPUTS[node.op_type]
        weight_name, zero_name = node.input[weight_at], node.input[zero_at]
        if weight_name in shifted:
            continue
        weight = numpy_helper.to_array(model.graph.initializer[index[weight_name]])
        zero = numpy_helper.to_array(model.graph.initializer[index[zero_name]])
        if weight.dtype != np.int8 or zero.any():
            raise SystemExit(f"{graph}: {weight_name} is not symmetric int8; no exact twin")
        largest = max(largest, int(np.abs(weight.astype(np.int16)).max()))
        moved = (weight.astype(np.int16) + 128).astype(np.uint8)
        model.graph.initializer[index[weight_name]].CopyFrom(
            numpy_helper.from_array(moved, weight_name)
        )
        model.graph.initializer[index[zero_name]].CopyFrom(
            numpy_helper.from_array(np.full(zero.shape, 128, np.uint8), zero_name)
        )
        shifted.add(weight_name)
    onnx.save(model, str(out))
    return largest


def _compare(model_dir: Path, pairs: list[tuple[str, str]]) -> dict[str, object]:
    classifier = load_classifier(Settings(model_dir=model_dir, provider="cpu"), variant="int8")
    graph = model_dir / classifier.manifest.variant("int8").file
    with tempfile.TemporaryDirectory() as scratch:
        twin = Path(scratch) / "twin.onnx"
        largest = exact_twin(graph, twin)
        exact = graph_logits(twin, classifier.tokenizer, pairs)
    here = graph_logits(graph, classifier.tokenizer, pairs)
    calibration = classifier.manifest.calibration
    scale, bias = (calibration.scale, calibration.bias) if calibration else (1.0, 0.0)
    gap = np.abs(here - exact)
    return {
        "model": str(model_dir),
        "version": classifier.manifest.version,
        "largest_integer_weight": largest,
        "window_rows": len(gap),
        "median_abs_logit_gap": round(float(np.median(gap)), 4),
        "p95_abs_logit_gap": round(float(np.percentile(gap, 95)), 4),
        "max_abs_logit_gap": round(float(gap.max()), 4),
        "label_agreement": round(
            float(np.mean((scale * here + bias >= 0) == (scale * exact + bias >= 0))), 4
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+", help="model folders with an int8 variant")
    parser.add_argument("--pairs", type=int, default=400)
    args = parser.parse_args()
    pairs = validation_pairs(args.pairs)
    flags = _cpu_flags()
    result = {
        "machine": {"cpu": _cpu_model(), "flags": flags},
        "pairs": len(pairs),
        "models": [_compare(folder, pairs) for folder in args.models],
    }
    print(json.dumps(result, indent=2))
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    kind = "vnni" if flags.get("avx512_vnni") or flags.get("avx_vnni") else "no-vnni"
    out = ROOT / "benchmarks" / "results" / f"int8-portability-{kind}-{stamp}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
