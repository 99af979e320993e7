"""Recover a trainable checkpoint from an exported model's ONNX weights.

Training checkpoints live in gitignored folders and do not outlive the
machine that made them; the shipped model does. Reading its weights back out
of the fused graph (dequantizing the int8 variant) lets training continue
from the shipped model on any machine instead of starting again from the base
encoder. The int8 round trip costs at most half a quantization step per
weight, which fine-tuning absorbs.

Weights are found by where they sit in the fused graph (a layer's
attention, skip layer norms and GELU), not by name: fusion renames the
matrices and export shares one initializer between equal tensors.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from worker.errors import ModelError
from worker.model.carry import require_new_folder
from worker.model.manifest import Variant, load_manifest

__all__ = ["recover_checkpoint"]

_PREFERENCE: tuple[Variant, ...] = ("fp32", "fp16", "int8")


class _Graph:
    """Initializers (dequantized to fp32) and the producer of each tensor."""

    def __init__(self, path: Path) -> None:
        import onnx
        from onnx import numpy_helper

        try:
            graph = onnx.load(str(path)).graph
        except Exception as exc:  # onnx raises DecodeError, OSError and more
            raise ModelError(f"cannot read ONNX graph {path}: {exc}") from exc
        self.nodes = list(graph.node)
        self.output = graph.output[0].name
        self.producer = {output: node for node in self.nodes for output in node.output}
        raw = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
        self.weights: dict[str, np.ndarray] = {}
        for name, array in raw.items():
            if name.endswith("_quantized"):
                stem = name.removesuffix("_quantized")
                self.weights[stem] = _dequantize(
                    array, raw[stem + "_scale"], raw[stem + "_zero_point"]
                )
            elif not name.endswith(("_scale", "_zero_point")):
                self.weights[name] = array.astype(np.float32) if array.dtype.kind == "f" else array

    def matmul_weight(self, tensor: str) -> np.ndarray:
        """The weight of the MatMul whose (rescaled) output is ``tensor``."""
        node = self.producer.get(tensor)
        while node is not None and node.op_type in ("Mul", "Cast"):
            node = self.producer.get(node.input[0])
        if node is None or node.op_type not in ("MatMul", "MatMulInteger"):
            raise ModelError(f"no MatMul produces {tensor}: not a fused BERT classifier")
        return self.initializer(node.input[1])

    def holds(self, name: str) -> bool:
        """Whether ``name`` is a weight (plain, or the int8 form of one)."""
        return name.removesuffix("_quantized") in self.weights

    def initializer(self, name: str) -> np.ndarray:
        if not self.holds(name):
            raise ModelError(f"{name} is not a weight of the graph")
        return self.weights[name.removesuffix("_quantized")]

    def all(self, *op_types: str) -> list[Any]:
        """Nodes of these types, in graph (topological) order."""
        return [node for node in self.nodes if node.op_type in op_types]

    def only(self, op_type: str) -> Any:
        found = self.all(op_type)
        if len(found) != 1:
            raise ModelError(f"expected one {op_type} node, found {len(found)}")
        return found[0]


def _dequantize(values: np.ndarray, scale: np.ndarray, zero_point: np.ndarray) -> np.ndarray:
    """(q - zero point) x scale; per-channel scales run along the last axis (MatMul columns)."""
    return (values.astype(np.float32) - zero_point.astype(np.float32)) * scale.astype(np.float32)


def _linear(graph: _Graph, node: Any) -> tuple[np.ndarray, np.ndarray]:
    """(weight in torch's (out, in) layout, bias) of a Gemm, or of a MatMul and its Add.

    Constant folding drops an all-zero bias, so a missing one reads as zeros.
    """
    if node.op_type == "Gemm":
        transposed = any(a.name == "transB" and a.i == 1 for a in node.attribute)
        weight = graph.initializer(node.input[1])
        weight = weight if transposed else weight.T
        return weight, _optional(graph, node, 2, weight.shape[0])
    if node.op_type == "Add":
        bias_input = next(name for name in node.input if graph.holds(name))
        other = next(name for name in node.input if name != bias_input)
        return graph.matmul_weight(other).T, graph.initializer(bias_input)
    weight = graph.matmul_weight(node.output[0]).T
    return weight, np.zeros(weight.shape[0], dtype=np.float32)


def _optional(graph: _Graph, node: Any, position: int, size: int) -> np.ndarray:
    """An optional bias input of ``node``, zeros when folding removed it."""
    if len(node.input) > position and node.input[position]:
        return graph.initializer(node.input[position])
    return np.zeros(size, dtype=np.float32)


def _embeddings(graph: _Graph) -> dict[str, np.ndarray]:
    """Embedding tables told apart by the input each lookup reads, and their layer norm."""
    state: dict[str, np.ndarray] = {}
    tables = {"input_ids": "word", "token_type_ids": "token_type"}
    for node in graph.nodes:
        if node.op_type == "Gather" and graph.holds(node.input[0]):
            table = tables.get(node.input[1], "position")
            state[f"bert.embeddings.{table}_embeddings.weight"] = graph.initializer(node.input[0])
    norm = graph.only("LayerNormalization")
    state["bert.embeddings.LayerNorm.weight"] = graph.initializer(norm.input[1])
    state["bert.embeddings.LayerNorm.bias"] = graph.initializer(norm.input[2])
    return state


def _layer_state(graph: _Graph, index: int, nodes: tuple[Any, Any, Any, Any]) -> dict[str, Any]:
    """One encoder layer from its attention, two skip layer norms and GELU, in torch's layout."""
    attention, attention_norm, gelu, output_norm = nodes
    layer = f"bert.encoder.layer.{index}"
    qkv_weight = graph.initializer(attention.input[1])
    hidden = qkv_weight.shape[0]
    qkv_bias = _optional(graph, attention, 2, 3 * hidden)
    state: dict[str, np.ndarray] = {}
    for part, name in enumerate(("query", "key", "value")):
        columns = slice(part * hidden, (part + 1) * hidden)
        state[f"{layer}.attention.self.{name}.weight"] = qkv_weight[:, columns].T
        state[f"{layer}.attention.self.{name}.bias"] = qkv_bias[columns]
    for norm, prefix in ((attention_norm, "attention.output"), (output_norm, "output")):
        state[f"{layer}.{prefix}.dense.weight"] = graph.matmul_weight(norm.input[0]).T
        state[f"{layer}.{prefix}.dense.bias"] = _optional(graph, norm, 4, hidden)
        state[f"{layer}.{prefix}.LayerNorm.weight"] = graph.initializer(norm.input[2])
        state[f"{layer}.{prefix}.LayerNorm.bias"] = graph.initializer(norm.input[3])
    state[f"{layer}.intermediate.dense.weight"] = graph.matmul_weight(gelu.input[0]).T
    state[f"{layer}.intermediate.dense.bias"] = graph.initializer(gelu.input[1])
    return state


def _state(graph: _Graph) -> dict[str, np.ndarray]:
    """Every weight of the classifier, found by the graph's structure, not its names.

    Export shares one initializer between equal tensors (an untrained model's
    layer norms and biases), so names cannot be trusted; graph order can: it
    is topological, and the encoder's layers run one after another.
    """
    attentions = graph.all("Attention", "QAttention")
    norms = graph.all("SkipLayerNormalization")
    gelus = graph.all("BiasGelu")
    if not attentions:
        raise ModelError("no fused attention nodes: was this model exported by cope?")
    if len(norms) != 2 * len(attentions) or len(gelus) != len(attentions):
        raise ModelError(
            f"unexpected fused graph: {len(attentions)} attention, {len(norms)} skip layer "
            f"norm and {len(gelus)} GELU nodes"
        )
    state = _embeddings(graph)
    for index, attention in enumerate(attentions):
        nodes = (attention, norms[2 * index], gelus[index], norms[2 * index + 1])
        state.update(_layer_state(graph, index, nodes))
    pooler = graph.producer[graph.only("Tanh").input[0]]
    state["bert.pooler.dense.weight"], state["bert.pooler.dense.bias"] = _linear(graph, pooler)
    head = graph.producer[graph.output]
    state["classifier.weight"], state["classifier.bias"] = _linear(graph, head)
    return state


def _config(graph: _Graph, state: dict[str, np.ndarray]) -> Any:
    from transformers import BertConfig

    attentions = graph.all("Attention", "QAttention")
    heads = {
        int(attribute.i)
        for node in attentions
        for attribute in node.attribute
        if attribute.name == "num_heads"
    }
    if len(heads) != 1:
        raise ModelError(f"attention nodes disagree on num_heads: {sorted(heads)}")
    vocab, hidden = state["bert.embeddings.word_embeddings.weight"].shape
    config = BertConfig(
        vocab_size=int(vocab),
        hidden_size=int(hidden),
        num_hidden_layers=len(attentions),
        num_attention_heads=heads.pop(),
        intermediate_size=int(state["bert.encoder.layer.0.intermediate.dense.bias"].shape[0]),
        max_position_embeddings=int(state["bert.embeddings.position_embeddings.weight"].shape[0]),
        type_vocab_size=int(state["bert.embeddings.token_type_embeddings.weight"].shape[0]),
    )
    config.num_labels = 1
    return config


def recover_checkpoint(model_dir: Path, out: Path, variant: Variant | None = None) -> Variant:
    """Write a checkpoint folder (weights, config, tokenizer) read from a model folder.

    Uses the most precise variant the folder holds unless ``variant`` names
    one; returns the variant read. ``out`` is what ``--init-from`` takes.
    """
    import torch
    from transformers import BertForSequenceClassification

    require_new_folder(out, "recover")
    manifest = load_manifest(model_dir)
    present = [name for name in _PREFERENCE if name in manifest.variants]
    if not present:
        raise ModelError(f"the manifest in {model_dir} names no model variant")
    chosen: Variant = variant if variant is not None else present[0]
    path = manifest.variant(chosen).verified_path(model_dir)
    tokenizer = manifest.tokenizer.verified_path(model_dir)
    try:
        graph = _Graph(path)
        state = _state(graph)
    except (KeyError, IndexError, StopIteration) as exc:
        raise ModelError(f"{model_dir}: not a fused BERT classifier ({exc!r})") from exc
    model: Any = BertForSequenceClassification(_config(graph, state))  # type: ignore[no-untyped-call]
    expected = set(model.state_dict()) - {"bert.embeddings.position_ids"}
    missing, extra = expected - state.keys(), state.keys() - expected
    if missing or extra:
        raise ModelError(f"recovered weights do not fit BERT: missing {missing}, extra {extra}")
    model.load_state_dict(
        {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in state.items()},
        strict=False,
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    shutil.copyfile(tokenizer, out / tokenizer.name)
    return chosen
