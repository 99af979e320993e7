"""int8 weights for the CPU: 7 bits per channel, rounded against real activations.

Weights keep 7 bits so that every x86 CPU computes the same integers (see
``to_int8``). Rounding each weight to its nearest 7-bit step moves logits
further from fp32 than 8 bits did (median gap on 400 validation pairs 0.43
against 0.37 for 0.37.0's recovered weights; ``benchmarks/int8_rounding.py``).
Rounding with error feedback (GPTQ, Frantar et al. 2022) takes most of that
back (0.38): the weights feeding one output are rounded one input at a time,
and the ones not yet rounded absorb each rounding error in proportion to how
the inputs co-vary on calibration text, so the layer's output moves far less
than its weights do.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from policy_registry import library_ids, library_policy
from worker.errors import ModelError, PolicyTooLongError
from worker.model.dataset import LabelledText, split_of
from worker.model.runtime import pad_batch
from worker.model.tokenize import PairTokenizer
from worker.settings import Settings

if TYPE_CHECKING:
    from onnx import ModelProto

__all__ = [
    "WEIGHT_LIMIT",
    "QuantizedWeight",
    "activation_moments",
    "quantized_weights",
    "round_with_error_feedback",
    "rounding_batches",
    "rounding_pairs",
    "to_int8",
]

# reduce_range int8 weights lie in [-64, 64]: a uint8 activation times two of
# them (255 * 64 * 2 = 32,640) still fits the int16 that non-VNNI kernels add in.
WEIGHT_LIMIT = 64
_BLOCK = 128
_DAMPING = 0.01
Feed = Mapping[str, npt.NDArray[np.int64]]


@dataclass(frozen=True, slots=True)
class QuantizedWeight:
    """A float weight of the fp32 graph, where its integers live in the int8 graph."""

    weight: str  # fp32 initializer
    activation: str  # the tensor it multiplies
    transposed: bool  # Gemm with transB: the int8 graph holds its transpose
    integers: str  # int8 initializer
    scale: str  # per-output-channel scale initializer


def to_int8(
    source: Path, target: Path, calibration: Sequence[Feed] = (), *, seven_bit: bool = True
) -> None:
    """Dynamic int8 quantization with per-channel 7-bit weight scales, for the CPU.

    Per-tensor scales moved scores by up to 0.37 in a trial; per-channel keeps
    them within a few hundredths. Embedding tables (``Gather``) are quantized
    too: they are two thirds of the fp32 file and cheap to dequantize.

    Weights keep 7 bits (``reduce_range``) so that every x86 CPU computes the
    same integers: without VNNI, ONNX Runtime's uint8 x int8 kernels add
    products in pairs in int16, which saturates once weights use all 8 bits,
    and an audit replayed on another machine would get other labels. With
    ``calibration`` batches the matmul weights are rounded with error feedback
    instead of to the nearest step, on the same scales. ``seven_bit=False``
    keeps 8-bit weights, only to measure what 7 bits cost.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source),
        str(target),
        per_channel=True,
        reduce_range=seven_bit,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Attention", "Gemm", "Gather"],
    )
    if calibration:
        limit = WEIGHT_LIMIT if seven_bit else 127
        _round_against(source, target, activation_moments(source, calibration), limit)


def quantized_weights(fp32_graph: Path, int8_graph: Path) -> list[QuantizedWeight]:
    """Every matmul weight of the fp32 graph that the int8 graph multiplies as integers."""
    import onnx

    return _matched_weights(onnx.load(str(fp32_graph)), onnx.load(str(int8_graph)))


def _matched_weights(fp32_model: ModelProto, int8_model: ModelProto) -> list[QuantizedWeight]:
    """``quantized_weights`` of graphs already in memory."""
    source = fp32_model.graph
    quantized = {tensor.name for tensor in int8_model.graph.initializer}
    floats = {tensor.name for tensor in source.initializer}
    found = []
    for node in source.node:
        if node.op_type not in ("MatMul", "Attention", "Gemm") or node.input[1] not in floats:
            continue
        transposed = node.op_type == "Gemm" and any(
            attribute.name == "transB" and attribute.i == 1 for attribute in node.attribute
        )
        stem = node.input[1] + ("_Transposed" if transposed else "")
        if f"{stem}_quantized" in quantized:
            found.append(
                QuantizedWeight(
                    weight=node.input[1],
                    activation=node.input[0],
                    transposed=transposed,
                    integers=f"{stem}_quantized",
                    scale=f"{stem}_scale",
                )
            )
    return found


def activation_moments(
    fp32_graph: Path, calibration: Iterable[Feed]
) -> dict[str, npt.NDArray[np.float64]]:
    """E[x xᵀ] of every matmul input over the real (unpadded) tokens of the batches."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(fp32_graph))
    matmuls = [node for node in model.graph.node if node.op_type in ("MatMul", "Attention", "Gemm")]
    inputs = sorted({node.input[0] for node in matmuls})
    for name in inputs:
        tapped = onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        model.graph.output.append(tapped)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    sums: dict[str, npt.NDArray[np.float64]] = {}
    counts = dict.fromkeys(inputs, 0)
    for feed in calibration:
        real = feed["attention_mask"].astype(bool)
        for name, value in zip(inputs, session.run(inputs, dict(feed)), strict=True):
            rows = np.asarray(value)
            rows = rows[real] if rows.ndim == 3 else rows.reshape(-1, rows.shape[-1])
            rows = rows.astype(np.float64)
            sums[name] = sums.get(name, 0) + rows.T @ rows
            counts[name] += len(rows)
    if not sums:
        raise ModelError("no calibration batches to round int8 weights against")
    return {name: total / counts[name] for name, total in sums.items()}


def round_with_error_feedback(
    weights: npt.NDArray[np.floating],
    moments: npt.NDArray[np.float64],
    scale: npt.NDArray[np.floating],
    *,
    limit: int = WEIGHT_LIMIT,
) -> npt.NDArray[np.int8]:
    """Integers for ``weights`` [inputs, outputs] on ``scale`` steps that keep x·W close.

    ``moments`` is E[x xᵀ] of the inputs. Inputs are rounded in order of how
    much they carry (the moment's diagonal), each error spread over the inputs
    not yet rounded through the Cholesky factor of the inverse moment (with 1%
    damping so near-constant inputs cannot blow it up).
    """
    count = weights.shape[0]
    if moments.shape != (count, count) or scale.shape != (weights.shape[1],):
        raise ModelError(
            f"weights {weights.shape}, moments {moments.shape} and scale {scale.shape} disagree"
        )
    work = weights.astype(np.float64).T.copy()  # [outputs, inputs]
    moment = moments.astype(np.float64).copy()
    unused = np.diag(moment) == 0
    moment[unused, unused] = 1.0
    work[:, unused] = 0.0
    moment[np.diag_indices(count)] += _DAMPING * float(np.mean(np.diag(moment)))
    order = np.argsort(-np.diag(moment), kind="stable")
    work, moment = work[:, order], moment[order][:, order]
    inverse = np.linalg.cholesky(np.linalg.inv(moment)).T  # upper triangular
    steps = scale.astype(np.float64)
    integers = np.zeros_like(work)
    for start in range(0, count, _BLOCK):
        end = min(start + _BLOCK, count)
        block = work[:, start:end].copy()
        errors = np.zeros_like(block)
        for j in range(end - start):
            column = block[:, j]
            rounded = np.clip(np.round(column / steps), -limit, limit)
            integers[:, start + j] = rounded
            error = (column - rounded * steps) / inverse[start + j, start + j]
            block[:, j:] -= np.outer(error, inverse[start + j, start + j : end])
            errors[:, j] = error
        work[:, end:] -= errors @ inverse[start:end, end:]
    restored = np.empty_like(integers)
    restored[:, order] = integers
    return restored.T.astype(np.int8)


def _round_against(
    fp32_graph: Path,
    int8_graph: Path,
    moments: Mapping[str, npt.NDArray[np.float64]],
    limit: int,
) -> None:
    """Replace the int8 graph's nearest-step integers with error-feedback ones, in place."""
    import onnx
    from onnx import numpy_helper

    source = onnx.load(str(fp32_graph))
    model = onnx.load(str(int8_graph))
    floats = {tensor.name: tensor for tensor in source.graph.initializer}
    tensors = {tensor.name: tensor for tensor in model.graph.initializer}
    for weight in _matched_weights(source, model):
        values = numpy_helper.to_array(floats[weight.weight])
        values = values.T if weight.transposed else values
        scale = numpy_helper.to_array(tensors[weight.scale])
        integers = round_with_error_feedback(values, moments[weight.activation], scale, limit=limit)
        tensors[weight.integers].CopyFrom(numpy_helper.from_array(integers, weight.integers))
    onnx.save(model, str(int8_graph))


def rounding_pairs(
    texts: Sequence[LabelledText], count: int, seed: int = 0
) -> list[tuple[str, str]]:
    """Training-split texts under the library policy of one of their areas.

    Only content training saw: the validation split stays unseen by every
    step that shapes the model, rounding included.
    """
    ids = set(library_ids())
    pool = [
        item
        for item in texts
        if item.text and split_of(item.content_id) == "train" and set(item.labels) & ids
    ]
    rng = random.Random(seed)
    chosen = rng.sample(pool, min(count, len(pool)))
    return [
        (library_policy(rng.choice(sorted(set(item.labels) & ids))), item.text) for item in chosen
    ]


def rounding_batches(
    tokenizer_file: Path,
    pairs: Sequence[tuple[str, str]],
    max_length: int,
    max_policy_tokens: int,
) -> list[Feed]:
    """Padded batches of 16 windows of ``pairs``, as the runtime builds them."""
    if not pairs:
        return []
    tokenizer = PairTokenizer(
        tokenizer_file,
        max_length=max_length,
        max_policy_tokens=max_policy_tokens,
        window_stride=Settings.model_fields["window_stride"].default,
    )
    try:
        rows = tokenizer.rows(pairs)
    except PolicyTooLongError as exc:
        raise ModelError(
            f"a rounding pair's {exc}; export with --rounding-pairs 0 or a larger policy budget"
        ) from exc
    return [pad_batch(rows[i : i + 16], tokenizer.pad_id) for i in range(0, len(rows), 16)]
