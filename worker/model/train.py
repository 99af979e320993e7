"""Fine-tune the pair classifier on contradictory examples, resumably.

CPU training is slow (seconds per step), so a run is a series of short
sessions: every ``checkpoint_every`` steps the model, optimizer, scheduler,
sampler position and RNG states are written atomically to ``OUT/last``, and a
new run with the same ``OUT`` continues from there. A pair whose content spans
several windows is scored as the maximum over its windows, exactly as the
runtime scores it, so training and serving agree.

Pairs come from ``training_data`` and are drawn by ``sampling``; a
flipped pair beside its twin or kept partner adds a ranking term, and a
pair an edit left alone an anchor to its unedited twin (``pair_losses``).
Teacher soft labels, where given, replace or blend with the
gold labels.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from worker.errors import ModelError
from worker.model.dataset import DEFAULT_DATA_DIR, Pair, contradicted_share
from worker.model.evaluate import read_scores
from worker.model.export import TOKENIZER_FILE, load_torch_classifier
from worker.model.pair_losses import (
    anchor_loss,
    kept_anchors,
    pair_logits,
    row_passes,
    twin_loss,
)
from worker.model.sampling import batch_schedule, draw_counts, twin_positions
from worker.model.tokenize import PairTokenizer, TokenRow
from worker.model.train_config import FLIP_BALANCES, TWIN_POLICIES, TrainConfig
from worker.model.training_data import (
    TrainingData,
    pair_key,
    training_data,
    training_tokenizer,
    write_pairs,
)

__all__ = ["add_train_arguments", "run_from_arguments", "train"]

LAST = "last"
MAX_ROWS_PER_PASS = 32
STATE_FILE = "train_state.pt"


def _log(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


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


def _target(pair: Pair, soft: dict[str, float], config: TrainConfig) -> float:
    """Gold label, or its blend with the teacher's score where there is one."""
    teacher = soft.get(pair_key(pair))
    if teacher is None:
        return float(pair.label)
    return config.soft_label_weight * teacher + (1 - config.soft_label_weight) * pair.label


def _scored_passes(
    model: Any, tokenizer: PairTokenizer, rows: Sequence[TokenRow], config: TrainConfig
) -> Iterator[tuple[list[int], Any]]:
    """Each pass of bounded windows scored: its pairs and one fp32 logit each (bf16 on CUDA).

    A generator, so a caller can run each pass's backward before the next is scored.
    """
    import torch

    for part in row_passes(rows, MAX_ROWS_PER_PASS):
        with torch.autocast("cuda", torch.bfloat16, enabled=config.device.startswith("cuda")):
            indices, logits = pair_logits(model, part, tokenizer.pad_id)
        yield indices, logits.float()


def _anchor_references(
    model: Any,
    tokenizer: PairTokenizer,
    data: TrainingData,
    chosen: Sequence[Pair],
    anchors: dict[int, str],
    config: TrainConfig,
) -> dict[int, Any]:
    """Each anchored pair's logit under its policy's unedited twin, without gradient
    and without dropout, by batch position."""
    import torch

    positions = sorted(anchors)
    rows = tokenizer.rows([(data.policy_texts[anchors[i]], chosen[i].text) for i in positions])
    references: dict[int, Any] = {}
    model.eval()
    with torch.no_grad():
        for indices, logits in _scored_passes(model, tokenizer, rows, config):
            for index, logit in zip(indices, logits, strict=True):
                references[positions[index]] = logit
    model.train()
    return references


def batch_backward(
    model: Any,
    tokenizer: PairTokenizer,
    data: TrainingData,
    batch: Sequence[int],
    soft: dict[str, float],
    config: TrainConfig,
) -> dict[str, float]:
    """Accumulate one batch's gradients, in passes of bounded windows; return its loss
    and each term's share of it (``labels``, ``twins``, ``anchors``)."""
    import torch

    chosen = [data.pairs[i] for i in batch]
    flipped = [data.flipped[i] for i in batch]
    twins = twin_positions(chosen, flipped)
    references: dict[int, Any] = {}
    if config.kept_anchor_weight > 0:
        anchors = kept_anchors(chosen, flipped, data.unedited)
        if anchors:
            references = _anchor_references(model, tokenizer, data, chosen, anchors, config)
    rows = tokenizer.rows([(data.policy_texts[p.policy_id], p.text) for p in chosen])
    loss_fn = torch.nn.BCEWithLogitsLoss()
    terms = dict.fromkeys(("labels", "twins", "anchors"), 0.0)
    for indices, logits in _scored_passes(model, tokenizer, rows, config):
        targets = torch.tensor(
            [_target(chosen[i], soft, config) for i in indices], device=config.device
        )
        parts = {"labels": loss_fn(logits, targets) * (len(indices) / len(chosen))}
        if config.twin_weight > 0:
            ranked = twin_loss(chosen, indices, logits, twins, config.twin_margin)
            parts["twins"] = config.twin_weight * ranked
        if references:
            held = anchor_loss(chosen, indices, logits, references)
            parts["anchors"] = config.kept_anchor_weight * held
        sum(parts.values()).backward()
        for name, value in parts.items():
            terms[name] += value.item()
    return {"loss": sum(terms.values()), **terms}


def train(config: TrainConfig, stop_at: int | None = None) -> Path:
    """Run (or resume) training; return the folder of the last checkpoint.

    ``stop_at`` ends this run early at that step (after a checkpoint), for
    sessions shorter than the whole schedule; the next run resumes.
    """
    import torch

    base = config.base_dir()
    tokenizer = training_tokenizer(config)
    data = training_data(config, tokenizer)
    pairs, policy_texts = data.pairs, data.policy_texts
    soft = read_scores(Path(config.soft_labels)) if config.soft_labels else {}
    order = batch_schedule(data, config, config.steps * config.batch_size)
    out = Path(config.out)  # written only once the data and draws are known to be sound
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(config), indent=2))
    resume = out / LAST
    state: dict[str, Any] = {"step": 0}
    if (resume / STATE_FILE).is_file():
        model = load_torch_classifier(resume, attention_dropout=config.attention_dropout)
        state = torch.load(resume / STATE_FILE, weights_only=False)
    else:
        torch.manual_seed(config.seed)
        model = load_torch_classifier(
            Path(config.init_from or base),
            seed=config.seed,
            attention_dropout=config.attention_dropout,
        )
    model.to(config.device)
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
        flipped=sum(data.flipped),
        contradicted_content=round(contradicted_share(pairs), 4),
        policies=len(policy_texts),
        soft_labels=sum(pair_key(p) in soft for p in pairs),
    )
    model.train()
    began, losses = time.time(), []
    step = int(state["step"])
    last_step = min(config.steps, stop_at or config.steps)
    while step < last_step:
        batch = order[step * config.batch_size : (step + 1) * config.batch_size]
        optimizer.zero_grad()
        losses.append(batch_backward(model, tokenizer, data, batch, soft, config))
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        step += 1
        if step % 10 == 0 or step == last_step:
            _log(
                event="progress",
                step=step,
                **{
                    name: round(float(np.mean([terms[name] for terms in losses[-10:]])), 4)
                    for name in losses[-1]
                },
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


_LIBRARY = (
    "sexual,hate,violence,harassment,self-harm,"
    "sexual-minors,hate-threatening,violence-graphic,offensive-language"
)


def add_train_arguments(parser: Any) -> None:
    """The options of a training run, shared by ``cope model train`` and ``main``."""
    parser.add_argument("out", help="run folder; an existing run resumes")
    parser.add_argument("--steps", type=int, default=1000, help="length of the whole schedule")
    parser.add_argument("--stop-at", type=int, help="end this run at this step (resumable)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--learning-rate", type=float, default=3e-5)
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    parser.add_argument("--policies", default=_LIBRARY, help="library policies trained on")
    parser.add_argument("--variants-per-area", type=int, default=40)
    parser.add_argument(
        "--carriers-per-edit",
        type=int,
        default=1,
        help="policies carrying an edit that each text it speaks of appears under",
    )
    parser.add_argument(
        "--draw-seed",
        type=int,
        help="seed of the draw order alone (default: the run's seed, which also fixes the "
        "generated policies); a continuation of the same recipe draws afresh with its own",
    )
    parser.add_argument("--init-from", default="", help="checkpoint whose weights start the run")
    parser.add_argument("--soft-labels", default="", help="teacher scores by pair id (JSONL)")
    parser.add_argument(
        "--soft-label-weight", type=float, default=1.0, help="1: teacher only; 0: gold only"
    )
    parser.add_argument("--device", default="cpu", help="torch device: cpu or cuda (bf16)")
    parser.add_argument("--checkpoint-every", type=int, default=50, help="steps between saves")
    parser.add_argument(
        "--flip-share", type=float, default=0.15, help="share of an area's draws that are flips"
    )
    parser.add_argument(
        "--flip-balance",
        choices=FLIP_BALANCES,
        default="source",
        help="draw an area's flips by data set (weighted by size) or evenly by edit; "
        "pooled: flips are --flip-share of all draws, evenly by edit across areas",
    )
    parser.add_argument(
        "--twin-weight",
        type=float,
        default=0.0,
        help="draw each flip beside its twin and rank them at this weight (0: off)",
    )
    parser.add_argument(
        "--twin-margin",
        type=float,
        default=0.0,
        help="logit gap between a flip and its twin below which the ranking term still costs",
    )
    parser.add_argument(
        "--kept-partner-share",
        type=float,
        default=0.0,
        help="share of flips drawn beside a text of the other label under the same policy "
        "instead of their twin (needs --twin-weight)",
    )
    parser.add_argument(
        "--kept-anchor-weight",
        type=float,
        default=0.0,
        help="hold each pair an edit left alone to its score under the policy without the "
        "edit, at this weight (0: off; costs a forward pass per such pair)",
    )
    parser.add_argument(
        "--twin-policy",
        choices=TWIN_POLICIES,
        default="area",
        help="a flip's twin: any policy of its area with the other label, or its own "
        "policy without the edit",
    )
    parser.add_argument(
        "--draw-weight",
        action="append",
        default=[],
        metavar="KEY=W",
        help="multiply the draws of an area (hate), an edit's flips (hate-threats; with "
        "--flip-balance edit or pooled), a data set within an area (hate:hatecheck), or "
        "that set's texts with a trait (hate:hatecheck:ident_pos_nh); repeatable",
    )
    parser.add_argument(
        "--attention-dropout",
        type=float,
        default=0.0,
        help="dropout on attention weights; above 0 it forces the unfused attention (2x slower)",
    )
    parser.add_argument(
        "--base", default="", help="base encoder folder (default: the packaged MiniLM)"
    )
    parser.add_argument(
        "--write-pairs", help="write the training pairs for a teacher to label, then stop"
    )
    parser.add_argument(
        "--describe-draws",
        action="store_true",
        help="print what the whole schedule draws (by area, data set, label, edit, trait) "
        "as JSON, then stop without making the run folder",
    )


def parse_draw_weights(entries: Sequence[str]) -> tuple[tuple[str, float], ...]:
    """``["hate=2", "hate:hatecheck=3"]`` as config pairs; a malformed entry is an error."""
    parsed = []
    for entry in entries:
        key, _, value = entry.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = None
        if weight is None or not key.strip():
            raise ModelError(
                f"a draw weight is KEY=W (AREA, EDIT, AREA:DATASET[:TRAIT]), got {entry!r}"
            )
        parsed.append((key.strip(), weight))
    return tuple(parsed)


def run_from_arguments(args: Any) -> None:
    """Train (or write the pairs file) as the parsed options say."""
    config = TrainConfig(
        out=str(args.out),
        policies=tuple(args.policies.split(",")),
        data_dir=args.data_dir or str(DEFAULT_DATA_DIR),
        steps=args.steps,
        batch_size=args.batch_size,
        max_length=args.max_length,
        learning_rate=args.learning_rate,
        variants_per_area=args.variants_per_area,
        carriers_per_edit=args.carriers_per_edit,
        init_from=args.init_from,
        draw_seed=args.draw_seed,
        base=args.base,
        checkpoint_every=args.checkpoint_every,
        flip_share=args.flip_share,
        flip_balance=args.flip_balance,
        twin_policy=args.twin_policy,
        twin_weight=args.twin_weight,
        twin_margin=args.twin_margin,
        kept_partner_share=args.kept_partner_share,
        kept_anchor_weight=args.kept_anchor_weight,
        draw_weights=parse_draw_weights(args.draw_weight),
        attention_dropout=args.attention_dropout,
        soft_labels=args.soft_labels,
        soft_label_weight=args.soft_label_weight,
        device=args.device,
    )
    if args.describe_draws:
        data = training_data(config)
        order = batch_schedule(data, config, config.steps * config.batch_size)
        print(json.dumps(draw_counts(data, order), indent=2))
        return
    if args.write_pairs:
        count = write_pairs(training_data(config), Path(args.write_pairs))
        _log(event="pairs_written", pairs=count, path=args.write_pairs)
        return
    train(config, stop_at=args.stop_at)


def main(argv: list[str] | None = None) -> None:
    """``python -m worker.model.train OUT [--steps N]``: run in the background."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    add_train_arguments(parser)
    run_from_arguments(parser.parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
