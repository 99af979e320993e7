"""Small models for tests: a random tiny BERT and a briefly fine-tuned MiniLM.

The random 2-layer BERT exports in seconds and serves structural checks.
Random weights are a poor subject for numeric parity, though: their scores
barely move with the input and their activation ranges are unlike a trained
model's, so int8 checks on them pass or fail by accident. Parity is checked
on the real base encoder fine-tuned for a few seconds on a toy policy task
(does the content mention food?), whose scores spread over (0, 1) for reasons.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

TINY_MAX_LENGTH = 128
TINY_MAX_POLICY_TOKENS = 64
TOY_POLICY = "Flag content that mentions food or drink of any kind."
_FOOD = ["pizza", "soup", "bread", "cheese", "apple", "coffee"]
_OTHER = [
    "river", "mountain", "forest", "guitar", "piano", "tiger", "horse", "winter", "rain",
    "copper", "silver", "car", "train", "window", "paper", "cloud",
]  # fmt: skip


def toy_examples(count: int, seed: int) -> tuple[list[tuple[str, str]], list[float]]:
    """(policy, content) pairs and labels; about half the contents mention food."""
    rng = np.random.default_rng(seed)
    pairs, labels = [], []
    for _ in range(count):
        words = [str(word) for word in rng.choice(_OTHER, size=int(rng.integers(1, 30)))]
        positive = bool(rng.random() < 0.5)
        if positive:
            words.insert(int(rng.integers(len(words) + 1)), str(rng.choice(_FOOD)))
        pairs.append((TOY_POLICY, " ".join(words)))
        labels.append(float(positive))
    return pairs, labels


def sample_pairs(count: int = 120, seed: int = 7) -> list[tuple[str, str]]:
    """Held-out toy pairs (a seed the fine-tuning never used)."""
    return toy_examples(count, seed)[0]


def random_tiny_checkpoint(tokenizer_file: Path, folder: Path) -> Path:
    """A randomly initialised 2-layer BERT classifier: fast to export, for structure tests."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(1234)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=512,
    )
    config.num_labels = 1  # one logit: the pair's score
    model = BertForSequenceClassification(config)  # type: ignore[no-untyped-call]
    model.save_pretrained(str(folder))
    shutil.copyfile(tokenizer_file, folder / "tokenizer.json")
    return folder


def minilm_toy_checkpoint(folder: Path, steps: int = 25) -> Path:
    """The base encoder fine-tuned on the toy task (about 20 s on two cores)."""
    import torch

    from worker.model.export import base_checkpoint_dir, load_torch_classifier
    from worker.model.runtime import pad_batch
    from worker.model.tokenize import PairTokenizer

    base = base_checkpoint_dir()
    model = load_torch_classifier(base)
    tokenizer = PairTokenizer(
        base / "tokenizer.json",
        max_length=TINY_MAX_LENGTH,
        max_policy_tokens=TINY_MAX_POLICY_TOKENS,
        window_stride=16,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    model.train()
    for step in range(steps):
        pairs, labels = toy_examples(16, seed=10_000 + step)
        feed = pad_batch(tokenizer.rows(pairs), tokenizer.pad_id)
        logits = model(**{k: torch.from_numpy(v) for k, v in feed.items()}).logits.reshape(-1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor(labels))
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
    model.eval()
    model.save_pretrained(str(folder))
    shutil.copyfile(base / "tokenizer.json", folder / "tokenizer.json")
    return folder


def torch_logits(checkpoint: Path, model_dir: Path, pairs: list[tuple[str, str]]) -> np.ndarray:
    """PyTorch logits of a checkpoint on pairs tokenized as the exported model folder does."""
    import torch

    from worker.model.export import load_torch_classifier
    from worker.model.runtime import load_classifier, pad_batch
    from worker.settings import Settings

    classifier = load_classifier(Settings(model_dir=model_dir, provider="cpu"), variant="fp32")
    feed = pad_batch(classifier.tokenizer.rows(pairs), classifier.tokenizer.pad_id)
    model = load_torch_classifier(checkpoint)
    with torch.no_grad():
        logits = model(**{name: torch.from_numpy(array) for name, array in feed.items()}).logits
    return np.asarray(logits.numpy().reshape(-1), dtype=np.float32)
