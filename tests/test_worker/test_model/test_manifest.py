from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.errors import ManifestError
from worker.model.manifest import MANIFEST_NAME, load_manifest, sha256_file


def test_exported_manifest_records_every_file_hash(tiny_model_dir: Path) -> None:
    manifest = load_manifest(tiny_model_dir)
    assert set(manifest.variants) == {"fp32", "fp16", "int8"}
    for model_file in [manifest.tokenizer, *manifest.variants.values()]:
        assert sha256_file(tiny_model_dir / model_file.file) == model_file.sha256
    assert manifest.max_length == 128
    assert manifest.max_policy_tokens == 64
    assert 0 < manifest.threshold < 1


def test_a_flipped_byte_in_a_model_file_is_caught(model_copy: Path) -> None:
    path = model_copy / "model.int8.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    manifest = load_manifest(model_copy)
    with pytest.raises(ManifestError, match="does not match its manifest"):
        manifest.variant("int8").verified_path(model_copy)


def test_a_tampered_tokenizer_is_caught(model_copy: Path) -> None:
    (model_copy / "tokenizer.json").write_text("{}")
    with pytest.raises(ManifestError, match="corrupt or replaced"):
        load_manifest(model_copy).tokenizer.verified_path(model_copy)


def test_a_missing_model_file_is_named(model_copy: Path) -> None:
    (model_copy / "model.fp16.onnx").unlink()
    with pytest.raises(ManifestError, match=r"model\.fp16\.onnx .* missing"):
        load_manifest(model_copy).variant("fp16").verified_path(model_copy)


def test_a_variant_not_exported_names_those_present(model_copy: Path) -> None:
    raw = json.loads((model_copy / MANIFEST_NAME).read_text())
    del raw["variants"]["fp16"]
    (model_copy / MANIFEST_NAME).write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match=r"no fp16 variant \(present: fp32, int8\)"):
        load_manifest(model_copy).variant("fp16")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "unreadable manifest"),
        ('{"name": "x"}', "invalid manifest"),
        (b"\xff\xfe\x00garbage", "unreadable manifest"),
    ],
)
def test_a_broken_manifest_is_a_clear_error(
    tmp_path: Path, content: str | bytes, message: str
) -> None:
    path = tmp_path / MANIFEST_NAME
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ManifestError, match=message):
        load_manifest(tmp_path)


def test_a_folder_without_manifest_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"no manifest\.json"):
        load_manifest(tmp_path)


def test_a_manifest_may_not_point_outside_its_folder(model_copy: Path) -> None:
    raw = json.loads((model_copy / MANIFEST_NAME).read_text())
    raw["variants"]["int8"]["file"] = "../../etc/passwd"
    (model_copy / MANIFEST_NAME).write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match="only plain file names"):
        load_manifest(model_copy).variant("int8").verified_path(model_copy)
