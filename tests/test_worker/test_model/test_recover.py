"""Checkpoints read back out of exported models: weights, scores, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.tiny_model import sample_pairs, torch_logits
from worker.errors import CopeError, ModelError
from worker.model.export import load_torch_classifier
from worker.model.recover import recover_checkpoint


def _state(checkpoint: Path) -> dict[str, np.ndarray]:
    model = load_torch_classifier(checkpoint)
    return {key: value.numpy() for key, value in model.state_dict().items()}


def test_fp32_recovery_returns_every_weight_exactly(
    tiny_checkpoint: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    assert recover_checkpoint(tiny_model_dir, tmp_path / "back") == "fp32"
    original, recovered = _state(tiny_checkpoint), _state(tmp_path / "back")
    assert original.keys() == recovered.keys()
    for key, value in original.items():
        np.testing.assert_allclose(recovered[key], value, atol=1e-6, err_msg=key)
    assert (tmp_path / "back" / "tokenizer.json").read_bytes() == (
        tiny_checkpoint / "tokenizer.json"
    ).read_bytes()


def test_int8_recovery_scores_like_the_trained_model(
    toy_checkpoint: Path, toy_model_dir: Path, tmp_path: Path
) -> None:
    assert recover_checkpoint(toy_model_dir, tmp_path / "back", variant="int8") == "int8"
    original, recovered = _state(toy_checkpoint), _state(tmp_path / "back")
    query = "bert.encoder.layer.3.attention.self.query.weight"
    step = np.abs(original[query]).max(axis=1, keepdims=True) / 64  # per-channel 7-bit step
    assert np.all(np.abs(recovered[query] - original[query]) <= step / 2 + 1e-6)
    reference = torch_logits(toy_checkpoint, toy_model_dir, sample_pairs())
    back = torch_logits(tmp_path / "back", toy_model_dir, sample_pairs())
    assert np.mean((back >= 0) == (reference >= 0)) >= 0.98
    assert np.abs(back - reference).max() < 0.5
    assert reference.std() > 0.5  # scores spread, so agreement is not trivial


def test_recovered_checkpoint_trains_from_where_the_model_was(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    recover_checkpoint(tiny_model_dir, tmp_path / "back")
    model = load_torch_classifier(tmp_path / "back")
    assert model.config.num_hidden_layers == 2
    assert model.config.hidden_size == 64
    assert model.config.num_labels == 1


def test_a_model_folder_without_the_asked_variant_is_refused(
    model_copy: Path, tmp_path: Path
) -> None:
    manifest = json.loads((model_copy / "manifest.json").read_text())
    del manifest["variants"]["fp16"]
    (model_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="no fp16 variant"):
        recover_checkpoint(model_copy, tmp_path / "back", variant="fp16")
    assert not (tmp_path / "back").exists()


def test_a_graph_that_is_not_a_cope_export_is_refused(model_copy: Path, tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "plain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    onnx.save(helper.make_model(graph), str(model_copy / "model.fp32.onnx"))
    manifest = json.loads((model_copy / "manifest.json").read_text())
    from worker.model.manifest import sha256_file

    manifest["variants"]["fp32"]["sha256"] = sha256_file(model_copy / "model.fp32.onnx")
    (model_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="no fused attention"):
        recover_checkpoint(model_copy, tmp_path / "back")


def test_a_corrupt_model_file_is_refused_by_its_hash(model_copy: Path, tmp_path: Path) -> None:
    (model_copy / "model.fp32.onnx").write_bytes(b"not a model")
    with pytest.raises(CopeError, match="sha256"):
        recover_checkpoint(model_copy, tmp_path / "back")


def test_a_folder_without_a_manifest_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    with pytest.raises(CopeError, match="manifest"):
        recover_checkpoint(tmp_path / "model", tmp_path / "back")
