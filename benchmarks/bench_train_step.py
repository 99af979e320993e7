"""Seconds per CPU training step: attention dropout on (0.1) against off (0.0).

Dropout on the attention weights makes PyTorch's scaled-dot-product
attention fall back to its unfused path: the full attention matrices are
built, softmaxed and masked with sampled noise. Both variants train the same
checkpoint on the same real training batches (from the sampler the trainer
uses), interleaved step by step so machine noise hits them alike; medians
and their ratio are reported.

    .venv/bin/python benchmarks/bench_train_step.py [--steps 4] [--checkpoint CKPT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_runtime import _cpu_model  # noqa: E402
from worker.model.export import base_checkpoint_dir, load_torch_classifier  # noqa: E402
from worker.model.sampling import batch_schedule  # noqa: E402
from worker.model.train import _LIBRARY, batch_backward  # noqa: E402
from worker.model.train_config import TrainConfig  # noqa: E402
from worker.model.training_data import training_data, training_tokenizer  # noqa: E402

VARIANTS = {"attention_dropout_0.1": 0.1, "attention_dropout_0.0": 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=4, help="measured steps per variant")
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    import torch

    checkpoint = args.checkpoint or base_checkpoint_dir()
    config = TrainConfig(out="unused", policies=tuple(_LIBRARY.split(",")))
    tokenizer = training_tokenizer(config)
    data = training_data(config, tokenizer)
    order = batch_schedule(data, config, (args.steps + 1) * config.batch_size)
    batches = [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    trainers = {}
    for name, dropout in VARIANTS.items():
        model = load_torch_classifier(checkpoint, attention_dropout=dropout)
        model.train()
        trainers[name] = (model, torch.optim.AdamW(model.parameters(), lr=config.learning_rate))

    seconds: dict[str, list[float]] = {name: [] for name in trainers}
    tokens = []
    for step, batch in enumerate(batches):
        tokens.append(
            sum(
                len(row.input_ids)
                for row in tokenizer.rows(
                    [
                        (data.policy_texts[data.pairs[i].policy_id], data.pairs[i].text)
                        for i in batch
                    ]
                )
            )
        )
        for name, (model, optimizer) in trainers.items():
            began = time.perf_counter()
            optimizer.zero_grad()
            batch_backward(model, tokenizer, data, batch, {}, config)
            optimizer.step()
            if step:  # the first step allocates; it is not the steady state
                seconds[name].append(time.perf_counter() - began)

    medians = {name: statistics.median(values) for name, values in seconds.items()}
    report = {
        "benchmark": "train_step",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(), "gpu": None},
        "versions": {"torch": torch.__version__},
        "checkpoint": str(checkpoint),
        "batch_size": config.batch_size,
        "steps_measured": args.steps,
        "tokens_per_batch_median": int(statistics.median(tokens[1:])),
        "seconds_per_step_median": {name: round(value, 2) for name, value in medians.items()},
        "seconds_per_step": {
            name: [round(v, 2) for v in values] for name, values in seconds.items()
        },
        "speedup_without_attention_dropout": round(
            medians["attention_dropout_0.1"] / medians["attention_dropout_0.0"], 2
        ),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"train-step-cpu-{datetime.now(UTC).strftime('%Y%m%d')}.json"
    target.write_text(json.dumps(report, indent=2) + "\n")
    print(
        json.dumps(report["seconds_per_step_median"]), report["speedup_without_attention_dropout"]
    )


if __name__ == "__main__":
    main()
