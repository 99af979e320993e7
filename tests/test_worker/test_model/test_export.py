"""Export of a tiny random BERT: fusion, parity with PyTorch, variant structure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.tiny_model import sample_pairs, torch_logits
from worker.errors import ModelError
from worker.model.export import export_model, fused_op_counts
from worker.model.runtime import load_classifier, pad_batch
from worker.settings import Settings


def test_fp32_graph_has_fused_attention_layer_norm_and_gelu(tiny_model_dir: Path) -> None:
    counts = fused_op_counts(tiny_model_dir / "model.fp32.onnx")
    layers = 2
    assert counts.get("Attention", 0) + counts.get("MultiHeadAttention", 0) == layers
    assert counts["SkipLayerNormalization"] == 2 * layers
    assert counts.get("BiasGelu", 0) + counts.get("EmbedLayerNormalization", 0) >= layers


def test_fp32_matches_pytorch_within_1e_3_logits(toy_checkpoint: Path, toy_model_dir: Path) -> None:
    import onnxruntime as ort

    pairs = sample_pairs()
    classifier = load_classifier(Settings(model_dir=toy_model_dir, provider="cpu"), variant="fp32")
    feed = pad_batch(classifier.tokenizer.rows(pairs), classifier.tokenizer.pad_id)
    session = ort.InferenceSession(
        str(toy_model_dir / "model.fp32.onnx"), providers=["CPUExecutionProvider"]
    )
    onnx_logits = session.run(["logits"], feed)[0].reshape(-1)
    reference = torch_logits(toy_checkpoint, toy_model_dir, pairs)
    assert np.abs(onnx_logits - reference).max() < 1e-3
    assert reference.std() > 0.5  # the head spreads scores, so parity is not trivial


def test_int8_agrees_with_pytorch_on_decisions_and_probabilities(
    toy_checkpoint: Path, toy_model_dir: Path
) -> None:
    pairs = sample_pairs()
    reference = 1 / (1 + np.exp(-torch_logits(toy_checkpoint, toy_model_dir, pairs)))
    int8 = load_classifier(Settings(model_dir=toy_model_dir, provider="cpu")).predict(pairs)
    agreement = np.mean((int8 >= 0.5) == (reference >= 0.5))
    assert agreement >= 0.99
    assert np.abs(int8 - reference).max() <= 0.02


def test_int8_quantizes_attention_and_matmuls(tiny_model_dir: Path) -> None:
    import onnx

    ops = {node.op_type for node in onnx.load(str(tiny_model_dir / "model.int8.onnx")).graph.node}
    assert {"QAttention", "MatMulInteger", "DynamicQuantizeLinear"} <= ops
    assert "Attention" not in ops


def _integer_weights(graph: Path) -> list[np.ndarray]:
    """The int8 weights that integer matmuls multiply activations by."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(graph))
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    names = {
        node.input[1]
        for node in model.graph.node
        if node.op_type in ("MatMulInteger", "QAttention")
    }
    return [numpy_helper.to_array(initializers[name]) for name in sorted(names)]


def test_int8_weights_keep_seven_bits_so_no_cpu_saturates(tiny_model_dir: Path) -> None:
    weights = _integer_weights(tiny_model_dir / "model.int8.onnx")
    assert weights
    assert all(weight.dtype == np.int8 for weight in weights)
    assert max(int(np.abs(weight.astype(np.int16)).max()) for weight in weights) <= 64


def test_seven_bit_weights_multiply_exactly_on_this_cpu() -> None:
    """The worst case for pairwise int16 sums: every activation 255, every weight +-64."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rows, depth, columns = 8, 384, 64
    activations = np.full((rows, depth), 255, np.uint8)
    activations[1::2, ::3] = 0  # some rows uneven, so a zero point of 0 is not the only case
    weights = np.where(np.arange(columns) % 2 == 0, 64, -64).astype(np.int8)
    weights = np.broadcast_to(weights, (depth, columns)).copy()
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "w"], ["y"])],
        "worst-case",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [rows, depth])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [rows, columns])],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    [product] = session.run(None, {"a": activations})
    assert np.array_equal(product, activations.astype(np.int64) @ weights.astype(np.int64))


def test_fp16_is_a_valid_fused_graph_with_fp16_weights(tiny_model_dir: Path) -> None:
    import onnx

    path = tiny_model_dir / "model.fp16.onnx"
    onnx.checker.check_model(str(path))
    model = onnx.load(str(path))
    float_types = {
        tensor.data_type
        for tensor in model.graph.initializer
        if tensor.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    }
    assert float_types == {onnx.TensorProto.FLOAT16}
    assert fused_op_counts(path).keys() >= {"Attention", "SkipLayerNormalization"}
    [logits] = model.graph.output
    assert logits.type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # I/O stays fp32


@pytest.mark.gpu
def test_fp16_matches_fp32_on_cuda(tiny_model_dir: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("no CUDA here: fp16 fused kernels exist only on the GPU")
    pairs = sample_pairs()
    fp32 = load_classifier(Settings(model_dir=tiny_model_dir, provider="cpu"), variant="fp32")
    fp16 = load_classifier(Settings(model_dir=tiny_model_dir, provider="cuda"))
    assert fp16.variant == "fp16"
    assert np.abs(fp16.predict(pairs) - fp32.predict(pairs)).max() < 0.01


def test_export_refuses_a_window_longer_than_the_encoder(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModelError, match="exceeds the encoder's 512 positions"):
        export_model(
            tiny_checkpoint,
            tmp_path,
            name="x",
            version="1",
            max_length=1024,
            max_policy_tokens=64,
            threshold=0.5,
        )


def test_export_refuses_a_checkpoint_without_tokenizer(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"has no tokenizer\.json"):
        export_model(
            tmp_path,
            tmp_path / "out",
            name="x",
            version="1",
            max_length=128,
            max_policy_tokens=64,
            threshold=0.5,
        )
