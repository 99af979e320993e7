"""int8 rounding with error feedback: closer outputs, 7-bit integers, training text only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from policy_registry import library_policy
from tests.tiny_model import TINY_MAX_LENGTH, TINY_MAX_POLICY_TOKENS, sample_pairs
from worker.errors import ModelError
from worker.model.dataset import LabelledText, split_of
from worker.model.quantize import (
    WEIGHT_LIMIT,
    activation_moments,
    quantized_weights,
    round_with_error_feedback,
    rounding_pairs,
)


def _correlated_inputs(rows: int, depth: int, seed: int) -> np.ndarray:
    """Inputs that co-vary, as a transformer's hidden units do."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(depth, depth)) / np.sqrt(depth) + np.eye(depth)
    inputs: np.ndarray = rng.normal(size=(rows, depth)) @ mixing
    return inputs


def _problem(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + 1)
    weights = rng.normal(size=(96, 24)) * 0.05
    scale = np.abs(weights).max(axis=0) / WEIGHT_LIMIT
    fit = _correlated_inputs(4000, 96, seed)
    return weights, fit.T @ fit / len(fit), scale


def _output_error(
    inputs: np.ndarray, weights: np.ndarray, integers: np.ndarray, scale: np.ndarray
) -> float:
    return float(np.mean((inputs @ weights - inputs @ (integers * scale)) ** 2))


def test_error_feedback_moves_outputs_less_than_rounding_to_nearest_on_unseen_inputs() -> None:
    weights, moments, scale = _problem()
    unseen = _correlated_inputs(2000, 96, seed=0)
    nearest = np.clip(np.round(weights / scale), -WEIGHT_LIMIT, WEIGHT_LIMIT)
    fed_back = round_with_error_feedback(weights, moments, scale)
    assert _output_error(unseen, weights, fed_back, scale) < 0.7 * _output_error(
        unseen, weights, nearest, scale
    )


def test_rounded_weights_stay_within_seven_bits_on_the_given_scale() -> None:
    weights, moments, scale = _problem(seed=3)
    integers = round_with_error_feedback(weights, moments, scale)
    assert integers.dtype == np.int8
    assert integers.shape == weights.shape
    assert int(np.abs(integers.astype(np.int16)).max()) <= WEIGHT_LIMIT
    # Feedback nudges weights by a step or two, never to another value altogether.
    assert np.abs(integers - weights / scale).max() < 4


def test_an_input_that_never_varies_gets_no_weight_and_no_nan() -> None:
    weights, moments, scale = _problem(seed=5)
    moments[7, :] = 0.0
    moments[:, 7] = 0.0
    integers = round_with_error_feedback(weights, moments, scale)
    assert not integers[7].any()
    assert np.isfinite(integers.astype(float)).all()


def test_rounding_refuses_moments_of_another_shape() -> None:
    weights, moments, scale = _problem()
    with pytest.raises(ModelError, match="disagree"):
        round_with_error_feedback(weights, moments[:-1, :-1], scale)
    with pytest.raises(ModelError, match="disagree"):
        round_with_error_feedback(weights, moments, scale[:-1])


def _texts(count: int) -> list[LabelledText]:
    return [
        LabelledText(
            source="openai", content_id=f"openai:{i}", text=f"text {i}", labels={"hate": i % 2}
        )
        for i in range(count)
    ]


def test_rounding_pairs_take_only_training_content_under_library_policies() -> None:
    texts = _texts(400)
    pairs = rounding_pairs(texts, 50)
    assert len(pairs) == 50
    by_text = {item.text: item for item in texts}
    assert all(split_of(by_text[content].content_id) == "train" for _, content in pairs)
    assert {policy for policy, _ in pairs} == {library_policy("hate")}
    assert rounding_pairs(texts, 50) == pairs  # seeded


def test_rounding_pairs_skip_empty_texts_and_texts_no_library_policy_labels() -> None:
    texts = [
        LabelledText(source="openai", content_id="a", text="", labels={"hate": 1}),
        LabelledText(source="openai", content_id="b", text="kept out", labels={"unknown": 1}),
    ]
    assert rounding_pairs(texts, 10) == []


def test_moments_refuse_no_calibration_batches(tiny_model_dir: Path) -> None:
    with pytest.raises(ModelError, match="no calibration batches"):
        activation_moments(tiny_model_dir / "model.fp32.onnx", [])


def test_export_rounds_every_matmul_weight_against_calibration_pairs(
    tiny_checkpoint: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    import onnx
    from onnx import numpy_helper

    from worker.model.export import export_model

    export_model(
        tiny_checkpoint,
        tmp_path,
        name="x",
        version="1",
        max_length=TINY_MAX_LENGTH,
        max_policy_tokens=TINY_MAX_POLICY_TOKENS,
        threshold=0.5,
        variants=("fp32", "int8"),
        rounding_pairs=sample_pairs(40),
    )
    weights = quantized_weights(tmp_path / "model.fp32.onnx", tmp_path / "model.int8.onnx")
    assert {weight.transposed for weight in weights} == {False, True}  # matmuls and Gemm heads

    def initializers(folder: Path) -> dict[str, np.ndarray]:
        graph = onnx.load(str(folder / "model.int8.onnx")).graph
        return {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}

    fed_back, nearest = initializers(tmp_path), initializers(tiny_model_dir)
    for weight in weights:
        assert np.array_equal(fed_back[weight.scale], nearest[weight.scale])
        assert np.abs(fed_back[weight.integers].astype(np.int16)).max() <= WEIGHT_LIMIT
    changed = [
        not np.array_equal(fed_back[weight.integers], nearest[weight.integers])
        for weight in weights
    ]
    assert all(changed)


def test_eight_bit_weights_use_the_whole_int8_range_for_comparison(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    import onnx
    from onnx import numpy_helper

    from worker.model.quantize import to_int8

    fp32 = tiny_model_dir / "model.fp32.onnx"
    seven, eight = tmp_path / "seven.onnx", tmp_path / "eight.onnx"
    to_int8(fp32, seven)
    to_int8(fp32, eight, seven_bit=False)

    def widest(graph: Path) -> int:
        integers = [
            numpy_helper.to_array(tensor)
            for tensor in onnx.load(str(graph)).graph.initializer
            if tensor.name.endswith("_quantized") and tensor.data_type == onnx.TensorProto.INT8
        ]
        return max(int(np.abs(values.astype(np.int16)).max()) for values in integers)

    assert widest(seven) <= WEIGHT_LIMIT < widest(eight)
