"""Small, checked edits of the fused ONNX graph that make it quantizable.

onnxscript's fusion leaves two things ONNX Runtime's quantizer cannot use:
each ``Attention`` node's packed QKV weight is a ``Concat`` computed at run
time, and the padding mask arrives as a 4-D additive bias (input 5), which
``QAttention`` has no slot for and would silently drop. Folding constants and
feeding ``Attention`` the plain 2-D key mask (input 3, ``mask_index``) gives
an equivalent graph that quantizes with the mask intact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["fold_constants", "use_key_padding_mask"]

_MASK_INPUT = "attention_mask"
_MASK_INT32 = "attention_mask_int32"


def fold_constants(source: Path, target: Path) -> None:
    """Constant-fold with ONNX Runtime's basic (standard-op only) optimizer."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(target)
    options.log_severity_level = 3
    ort.InferenceSession(str(source), sess_options=options, providers=["CPUExecutionProvider"])


def use_key_padding_mask(path: Path) -> int:
    """Rewire every ``Attention`` node to the 2-D key mask; return how many.

    Also drops ``qkv_hidden_sizes`` when the three sizes are equal (it is then
    the default), since the quantizer skips nodes that carry it. Nodes and
    weights that only fed the old 4-D bias are pruned.
    """
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(path))
    graph = model.graph
    rewired = 0
    for node in graph.node:
        if node.op_type != "Attention":
            continue
        node.input[:] = [*list(node.input)[:3], _MASK_INT32]
        for attribute in list(node.attribute):
            sizes = helper.get_attribute_value(attribute)
            if attribute.name == "qkv_hidden_sizes" and len(set(sizes)) == 1:
                node.attribute.remove(attribute)
        rewired += 1
    if rewired:
        cast = helper.make_node(
            "Cast", [_MASK_INPUT], [_MASK_INT32], to=TensorProto.INT32, name="mask_to_int32"
        )
        graph.node.insert(0, cast)
    _prune_dead_nodes(graph)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return rewired


def _prune_dead_nodes(graph: Any) -> None:
    """Remove nodes and initializers no graph output depends on."""
    nodes = graph.node
    needed = {output.name for output in graph.output}
    kept = []
    for node in reversed(nodes):
        if any(name in needed for name in node.output):
            kept.append(node)
            needed.update(name for name in node.input if name)
    del nodes[:]
    nodes.extend(reversed(kept))
    initializers = graph.initializer
    live = [tensor for tensor in initializers if tensor.name in needed]
    del initializers[:]
    initializers.extend(live)
