from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from worker.errors import PolicyTooLongError, ProviderUnavailableError
from worker.model.runtime import (
    OnnxClassifier,
    length_buckets,
    load_classifier,
    pad_batch,
    resolve_provider,
)
from worker.model.tokenize import TokenRow
from worker.settings import Settings

POLICY = "Flag content that insults a person. Excludes friendly banter."
TEXTS = [
    "you are an idiot",
    "have a nice day",
    "the weather is fine " * 3,
    "I will find you",
    "thanks for your help, friend",
    "ok",
]


def _classifier(model_dir: Path, variant: str = "int8", batch: int = 8) -> OnnxClassifier:
    settings = Settings(model_dir=model_dir, provider="cpu", max_batch_size=batch)
    return load_classifier(settings, variant=variant)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("requested", "available", "expected"),
    [
        ("cpu", ["CUDAExecutionProvider", "CPUExecutionProvider"], "cpu"),
        ("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda"),
        ("auto", ["CPUExecutionProvider"], "cpu"),
        ("cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda"),
    ],
)
def test_provider_setting_maps_to_a_device(
    requested: str, available: list[str], expected: str
) -> None:
    assert resolve_provider(requested, available) == expected  # type: ignore[arg-type]


def test_cuda_requested_without_cuda_fails_loudly() -> None:
    with pytest.raises(ProviderUnavailableError, match="provider 'cuda' requested"):
        resolve_provider("cuda", ["CPUExecutionProvider"])


def test_cuda_on_this_machine_is_a_start_up_error_not_a_fallback(tiny_model_dir: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ProviderUnavailableError):
        load_classifier(Settings(model_dir=tiny_model_dir, provider="cuda"))


def test_cpu_uses_the_int8_model_by_default(tiny_model_dir: Path) -> None:
    classifier = load_classifier(Settings(model_dir=tiny_model_dir, provider="cpu"))
    assert classifier.variant == "int8"
    assert classifier.health()["providers"] == ["CPUExecutionProvider"]


def test_scores_are_probabilities_one_per_pair(tiny_model_dir: Path) -> None:
    scores = _classifier(tiny_model_dir).predict([(POLICY, text) for text in TEXTS])
    assert scores.shape == (len(TEXTS),)
    assert scores.dtype == np.float32
    assert np.all((scores > 0) & (scores < 1))
    assert len(set(scores.tolist())) > 1


def test_no_pairs_give_no_scores(tiny_model_dir: Path) -> None:
    assert _classifier(tiny_model_dir).predict([]).shape == (0,)


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_same_pair_scores_identically_whatever_its_batch(
    tiny_model_dir: Path, variant: str
) -> None:
    pairs = [(POLICY, text) for text in TEXTS]
    together = _classifier(tiny_model_dir, variant, batch=8).predict(pairs)
    alone = np.array(
        [_classifier(tiny_model_dir, variant, batch=1).predict([pair])[0] for pair in pairs]
    )
    reordered = _classifier(tiny_model_dir, variant, batch=3).predict(pairs[::-1])[::-1]
    assert together.tobytes() == alone.tobytes()
    assert together.tobytes() == reordered.tobytes()


def test_long_content_scores_the_maximum_over_its_windows(tiny_model_dir: Path) -> None:
    classifier = _classifier(tiny_model_dir, "fp32")
    long_text = " ".join(f"token{i} is rude" for i in range(120))
    rows = classifier.tokenizer.rows([(POLICY, long_text)])
    assert len(rows) > 1
    window_scores = [float(1 / (1 + np.exp(-classifier._logits([row])[0]))) for row in rows]
    [score] = classifier.predict([(POLICY, long_text)])
    assert score == pytest.approx(max(window_scores), abs=1e-6)


def test_an_over_long_policy_is_rejected_before_inference(tiny_model_dir: Path) -> None:
    with pytest.raises(PolicyTooLongError, match="at most 64"):
        _classifier(tiny_model_dir).predict([("rule " * 100, "text")])


def test_buckets_group_rows_of_similar_length() -> None:
    rows = [TokenRow(i, tuple(range(length)), 1) for i, length in enumerate([9, 3, 7, 3, 12])]
    buckets = length_buckets(rows, max_batch_size=2)
    lengths = [[len(row.input_ids) for row in bucket.rows] for bucket in buckets]
    assert lengths == [[3, 3], [7, 9], [12]]


def test_padding_masks_and_segments_follow_each_row() -> None:
    rows = [TokenRow(0, (101, 5, 102, 6, 102), 3), TokenRow(1, (101, 5, 102), 3)]
    feed = pad_batch(rows, pad_id=0)
    assert feed["input_ids"].tolist() == [[101, 5, 102, 6, 102], [101, 5, 102, 0, 0]]
    assert feed["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    assert feed["token_type_ids"].tolist() == [[0, 0, 0, 1, 1], [0, 0, 0, 0, 0]]


def test_a_calibrated_manifest_maps_every_logit_the_same_way(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    import shutil

    from worker.model.calibrate import logit
    from worker.model.manifest import Calibration, load_manifest

    calibrated_dir = tmp_path / "calibrated"
    shutil.copytree(tiny_model_dir, calibrated_dir)
    manifest = load_manifest(calibrated_dir)
    calibration = Calibration(scale=0.5, bias=-1.25, pairs=10, policies=2)
    manifest.model_copy(update={"calibration": calibration}).write(calibrated_dir)
    assert load_manifest(calibrated_dir).calibration == calibration
    pairs = [("Flag food.", "pizza and pasta"), ("Flag sports.", "a quiet evening")]
    raw = logit(_classifier(tiny_model_dir, "fp32").predict(pairs))
    calibrated = logit(_classifier(calibrated_dir, "fp32").predict(pairs))
    np.testing.assert_allclose(calibrated, 0.5 * raw - 1.25, atol=1e-4)
    again = _classifier(calibrated_dir, "fp32")
    assert (
        again.model_ref().manifest_sha256 != _classifier(tiny_model_dir).model_ref().manifest_sha256
    )
