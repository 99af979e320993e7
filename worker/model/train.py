"""Fine-tune the pair classifier on contradictory examples, resumably.

CPU training is slow (seconds per step), so a run is a series of short
sessions: every ``checkpoint_every`` steps the model, optimizer, scheduler,
sampler position and RNG states are written atomically to ``OUT/last``, and a
new run with the same ``OUT`` continues from there. A pair whose content spans
several windows is scored as the maximum over its windows, exactly as the
runtime scores it, so training and serving agree.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from policy_registry import library_policy
from worker.model.dataset import DEFAULT_DATA_DIR, Pair, build_pairs, load_all
from worker.model.export import TOKENIZER_FILE, base_checkpoint_dir, load_torch_classifier
from worker.model.runtime import pad_batch
from worker.model.tokenize import PairTokenizer

__all__ = ["TrainConfig", "train"]

LAST = "last"
STATE_FILE = "train_state.pt"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a run; stored beside its checkpoints."""

    out: str
    policies: tuple[str, ...]
    data_dir: str = str(DEFAULT_DATA_DIR)
    base: str = ""
    steps: int = 1000
    batch_size: int = 16
    learning_rate: float = 3e-5
    warmup_steps: int = 50
    max_length: int = 512
    max_policy_tokens: int = 400
    window_stride: int = 64
    positive_repeat: int = 2
    checkpoint_every: int = 50
    seed: int = 13
    davidson_limit: int = 4000


def _log(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def _training_order(pairs: list[Pair], repeat: int, seed: int) -> list[int]:
    """Shuffled pair indices with positives repeated: they are the rare class."""
    order = [i for i, pair in enumerate(pairs) for _ in range(repeat if pair.label else 1)]
    random.Random(seed).shuffle(order)
    return order


def _save(model: Any, state: dict[str, Any], folder: Path, tokenizer_file: Path) -> None:
    """Write a checkpoint to a temporary folder, then swap it in."""
    import torch

    temporary = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    model.save_pretrained(str(temporary))
    shutil.copyfile(tokenizer_file, temporary / TOKENIZER_FILE)
    torch.save(state, temporary / STATE_FILE)
    shutil.rmtree(folder, ignore_errors=True)
    temporary.rename(folder)


def pair_logits(model: Any, tokenizer: PairTokenizer, batch: list[tuple[str, str]]) -> Any:
    """One logit per pair: the maximum over its content windows."""
    import torch

    rows = tokenizer.rows(batch)
    feed = {k: torch.from_numpy(v) for k, v in pad_batch(rows, tokenizer.pad_id).items()}
    window_logits = model(**feed).logits.reshape(-1)
    index = torch.tensor([row.pair_index for row in rows])
    start = torch.full((len(batch),), -1e4, dtype=window_logits.dtype)
    return start.scatter_reduce(0, index, window_logits, reduce="amax", include_self=False)


def train(config: TrainConfig, stop_at: int | None = None) -> Path:
    """Run (or resume) training; return the folder of the last checkpoint.

    ``stop_at`` ends this run early at that step (after a checkpoint), for
    sessions shorter than the whole schedule; the next run resumes.
    """
    import torch

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(config), indent=2))
    base = Path(config.base) if config.base else base_checkpoint_dir()
    texts = load_all(Path(config.data_dir), config.davidson_limit)
    pairs = build_pairs(texts, set(config.policies), "train")
    policy_texts = {policy_id: library_policy(policy_id) for policy_id in config.policies}
    tokenizer = PairTokenizer(
        base / TOKENIZER_FILE,
        max_length=config.max_length,
        max_policy_tokens=config.max_policy_tokens,
        window_stride=config.window_stride,
    )
    order = _training_order(pairs, config.positive_repeat, config.seed)
    resume = out / LAST
    state: dict[str, Any] = {"step": 0}
    if (resume / STATE_FILE).is_file():
        model = load_torch_classifier(resume)
        state = torch.load(resume / STATE_FILE, weights_only=False)
    else:
        torch.manual_seed(config.seed)
        model = load_torch_classifier(base, seed=config.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.01)

    def schedule(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        return max(0.0, (config.steps - step) / max(1, config.steps - config.warmup_steps))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    if "optimizer" in state:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
    _log(
        event="start",
        step=state["step"],
        pairs=len(pairs),
        positives=sum(p.label for p in pairs),
        policies=len(config.policies),
    )
    model.train()
    loss_fn = torch.nn.BCEWithLogitsLoss()
    began, losses = time.time(), []
    step = int(state["step"])
    last_step = min(config.steps, stop_at or config.steps)
    while step < last_step:
        offset = (step * config.batch_size) % len(order)
        chosen = [pairs[i] for i in order[offset : offset + config.batch_size]]
        logits = pair_logits(
            model, tokenizer, [(policy_texts[p.policy_id], p.text) for p in chosen]
        )
        loss = loss_fn(logits, torch.tensor([float(p.label) for p in chosen]))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        step += 1
        losses.append(loss.item())
        if step % 10 == 0 or step == last_step:
            _log(
                event="progress",
                step=step,
                loss=round(float(np.mean(losses[-10:])), 4),
                lr=scheduler.get_last_lr()[0],
                seconds_per_step=round((time.time() - began) / len(losses), 2),
            )
        if step % config.checkpoint_every == 0 or step == last_step:
            _save(
                model,
                {
                    "step": step,
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                },
                resume,
                base / TOKENIZER_FILE,
            )
            _log(event="checkpoint", step=step)
    model.eval()
    return resume


def main(argv: list[str] | None = None) -> None:
    """``python -m worker.model.train OUT [--steps N]``: run in the background."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out")
    parser.add_argument("--steps", type=int, default=1000, help="length of the whole schedule")
    parser.add_argument("--stop-at", type=int, help="end this run at this step (resumable)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    parser.add_argument(
        "--policies",
        default="sexual,hate,violence,harassment,self-harm,"
        "sexual-minors,hate-threatening,violence-graphic,offensive-language",
    )
    args = parser.parse_args(argv)
    config = TrainConfig(
        out=args.out,
        policies=tuple(args.policies.split(",")),
        data_dir=args.data_dir,
        steps=args.steps,
        batch_size=args.batch_size,
        max_length=args.max_length,
    )
    train(config, stop_at=args.stop_at)


if __name__ == "__main__":
    main(sys.argv[1:])
