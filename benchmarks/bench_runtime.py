"""Classifier throughput and latency: PyTorch eager vs ONNX Runtime variants.

One run, the same (policy, content) pairs for every variant: PyTorch eager
fp32, ORT unfused fp32, ORT fused fp32, ORT fused int8 (rows one at a time,
the deterministic default) and ORT fused int8 batched. Requests of 1, 8 and
32 pairs are scored with length bucketing inside each request. Variants are
interleaved round by round so machine noise hits them alike; medians over
rounds are reported with ratios to PyTorch eager.

    .venv/bin/python benchmarks/bench_runtime.py [--pairs 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from policy_registry import library_policy  # noqa: E402
from worker.model.export import (  # noqa: E402
    base_checkpoint_dir,
    export_unfused,
    fuse,
    load_torch_classifier,
    to_int8,
)
from worker.model.runtime import length_buckets, pad_batch  # noqa: E402
from worker.model.tokenize import PairTokenizer, TokenRow  # noqa: E402
from worker.observability import Progress  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
POLICIES = ["hate", "harassment", "violence", "sexual", "self-harm"]
BATCH_SIZES = (1, 8, 32)
RunRows = Callable[[Sequence[TokenRow]], np.ndarray]


def realistic_contents(tokenizer: PairTokenizer, count: int, seed: int) -> list[str]:
    """Texts of 20-300 tokens from the OpenAI moderation and Davidson sets."""
    texts = [json.loads(line)["text"] for line in (DATA / "openai-moderation/dev.jsonl").open()]
    with (DATA / "davidson/labeled_data.csv").open(newline="") as handle:
        texts += [row["tweet"] for row in csv.DictReader(handle)][:2000]
    fitting = [text for text in texts if 20 <= tokenizer.count_tokens(text) <= 300]
    rng = np.random.default_rng(seed)
    return [fitting[i] for i in rng.choice(len(fitting), size=count, replace=False)]


def ort_runner(path: Path, pad_id: int, rows_per_run: int | None) -> RunRows:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(rows: Sequence[TokenRow]) -> np.ndarray:
        step = rows_per_run or len(rows)
        outputs = [
            session.run(["logits"], pad_batch(rows[i : i + step], pad_id))[0].reshape(-1)
            for i in range(0, len(rows), step)
        ]
        return np.concatenate(outputs)

    return run


def torch_runner(model: object, pad_id: int) -> RunRows:
    import torch

    def run(rows: Sequence[TokenRow]) -> np.ndarray:
        feed = {k: torch.from_numpy(v) for k, v in pad_batch(rows, pad_id).items()}
        with torch.inference_mode():
            return model(**feed).logits.numpy().reshape(-1)  # type: ignore[operator]

    return run


def score_requests(
    tokenizer: PairTokenizer, pairs: list[tuple[str, str]], batch: int, run: RunRows
) -> list[float]:
    """Score pairs in requests of `batch` pairs; return each request's latency (s)."""
    latencies = []
    for start in range(0, len(pairs), batch):
        began = time.perf_counter()
        rows = tokenizer.rows(pairs[start : start + batch])
        for bucket in length_buckets(rows, batch):
            run(bucket.rows)
        latencies.append(time.perf_counter() - began)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    import onnxruntime as ort
    import torch

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    checkpoint = args.checkpoint or base_checkpoint_dir()
    tokenizer = PairTokenizer(
        checkpoint / "tokenizer.json", max_length=512, max_policy_tokens=400, window_stride=64
    )
    contents = realistic_contents(tokenizer, args.pairs, seed=11)
    policies = [library_policy(name) for name in POLICIES]
    pairs = [(policies[i % len(policies)], text) for i, text in enumerate(contents)]

    model = load_torch_classifier(checkpoint)
    work = Path(tempfile.mkdtemp(prefix="cope-bench-"))
    export_unfused(model, work / "unfused.onnx")
    fuse(work / "unfused.onnx", work / "fused.onnx")
    to_int8(work / "fused.onnx", work / "int8.onnx")
    pad = tokenizer.pad_id
    runners: dict[str, RunRows] = {
        "pytorch_eager_fp32": torch_runner(model, pad),
        "ort_unfused_fp32": ort_runner(work / "unfused.onnx", pad, None),
        "ort_fused_fp32": ort_runner(work / "fused.onnx", pad, None),
        "ort_fused_int8": ort_runner(work / "int8.onnx", pad, 1),
        "ort_fused_int8_batched": ort_runner(work / "int8.onnx", pad, None),
    }
    for run in runners.values():  # warm-up: first-run allocations are not the steady state
        score_requests(tokenizer, pairs[:4], 4, run)

    samples: dict[tuple[str, int], list[list[float]]] = {}
    progress = Progress(args.rounds * len(BATCH_SIZES) * len(runners), "measurements")
    for _ in range(args.rounds):
        for batch in BATCH_SIZES:
            for name, run in runners.items():
                latencies = score_requests(tokenizer, pairs, batch, run)
                samples.setdefault((name, batch), []).append(latencies)
                progress.advance()
    progress.close()

    results = []
    for (name, batch), rounds in samples.items():
        throughput = statistics.median(len(pairs) / sum(latencies) for latencies in rounds)
        every = [latency for latencies in rounds for latency in latencies]
        results.append(
            {
                "variant": name,
                "batch": batch,
                "pairs_per_s": round(throughput, 2),
                "p50_ms": round(1000 * float(np.percentile(every, 50)), 1),
                "p99_ms": round(1000 * float(np.percentile(every, 99)), 1),
            }
        )
    for row in results:
        eager = next(
            r
            for r in results
            if r["variant"] == "pytorch_eager_fp32" and r["batch"] == row["batch"]
        )
        row["vs_pytorch_eager"] = round(row["pairs_per_s"] / eager["pairs_per_s"], 2)

    token_counts = [len(row.input_ids) for row in tokenizer.rows(pairs)]
    report = {
        "benchmark": "runtime",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu": _cpu_model(),
            "cores": threads,
            "platform": platform.platform(),
            "gpu": None,
        },
        "versions": {"onnxruntime": ort.__version__, "torch": torch.__version__},
        "checkpoint": str(checkpoint),
        "pairs": len(pairs),
        "rounds": args.rounds,
        "row_tokens": {
            "median": int(np.median(token_counts)),
            "min": min(token_counts),
            "max": max(token_counts),
        },
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"runtime-cpu-{datetime.now(UTC).strftime('%Y%m%d')}.json"
    target.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'variant':<24} {'batch':>5} {'pairs/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'x eager':>8}")
    for row in results:
        print(
            f"{row['variant']:<24} {row['batch']:>5} {row['pairs_per_s']:>8} "
            f"{row['p50_ms']:>8} {row['p99_ms']:>8} {row['vs_pytorch_eager']:>8}"
        )
    print(f"written to {target}")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
