"""ONNX Runtime inference behind one small interface.

``Classifier.predict(pairs) -> scores`` is all the pipeline sees (with
``max_batch_size`` and ``health()``), so the backend can change without
touching the stream code. The CPU runs the int8 model, CUDA the fp16 model
with I/O binding.

Scores are deterministic to the bit for a given model, policy and content,
whatever else shares the batch: fp32 and fp16 rows are masked and
per-row; int8 quantizes activations with one scale per tensor, so by default
its rows run one at a time (on a 2-core CPU a 300-token row already fills the
matrix units, so batching them gained nothing when measured).

Asking for CUDA where it cannot start is an error at load time:
onnxruntime-gpu would otherwise fall back to the CPU without a word.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from worker.errors import ModelError, ProviderUnavailableError
from worker.model.manifest import MANIFEST_NAME, Manifest, Variant, load_manifest, sha256_file
from worker.model.tokenize import PairTokenizer, TokenRow
from worker.schemas import ModelRef
from worker.settings import Provider, Settings

__all__ = ["Classifier", "OnnxClassifier", "Scores", "load_classifier", "resolve_provider"]

Scores = npt.NDArray[np.float32]

_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"
_VARIANT_FOR: dict[str, Variant] = {"cuda": "fp16", "cpu": "int8"}


class Classifier(Protocol):
    """What the pipeline needs from a model: scores for (policy, content) pairs."""

    @property
    def max_batch_size(self) -> int: ...

    def predict(self, pairs: Sequence[tuple[str, str]]) -> Scores: ...

    def health(self) -> dict[str, Any]: ...


def resolve_provider(requested: Provider, available: Sequence[str]) -> str:
    """Map the setting to ``cuda`` or ``cpu``; refuse CUDA where it is absent."""
    if requested == "cpu":
        return "cpu"
    if _CUDA in available:
        return "cuda"
    if requested == "cuda":
        raise ProviderUnavailableError(
            "provider 'cuda' requested but ONNX Runtime offers only "
            f"{', '.join(available)}; install the `gpu` extra (onnxruntime-gpu) on a "
            "machine with CUDA, or set COPE_PROVIDER=cpu"
        )
    return "cpu"


def sigmoid(logits: npt.NDArray[np.floating[Any]]) -> Scores:
    """Logit to probability, computed in float32 so every backend rounds alike."""
    x = logits.astype(np.float32)
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float32)


@dataclass(frozen=True, slots=True)
class _Batch:
    """Rows of similar length, padded together."""

    rows: list[TokenRow]


def length_buckets(rows: Sequence[TokenRow], max_batch_size: int) -> list[_Batch]:
    """Group rows of similar length so padding stays small.

    Rows are sorted by length (stable, so equal inputs keep their order) and
    cut into runs of at most ``max_batch_size``.
    """
    ordered = sorted(rows, key=lambda row: len(row.input_ids))
    return [
        _Batch(rows=ordered[start : start + max_batch_size])
        for start in range(0, len(ordered), max_batch_size)
    ]


def pad_batch(rows: Sequence[TokenRow], pad_id: int) -> dict[str, npt.NDArray[np.int64]]:
    """The three BERT inputs for rows padded to the longest of them."""
    width = max(len(row.input_ids) for row in rows)
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    attention_mask = np.zeros((len(rows), width), dtype=np.int64)
    token_type_ids = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        length = len(row.input_ids)
        input_ids[i, :length] = row.input_ids
        attention_mask[i, :length] = 1
        token_type_ids[i, row.segment_split : length] = 1
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_type_ids": token_type_ids,
    }


class OnnxClassifier:
    """A loaded, hash-checked ONNX model with its tokenizer."""

    def __init__(
        self,
        manifest: Manifest,
        model_path: Path,
        tokenizer: PairTokenizer,
        *,
        device: str,
        variant: Variant,
        max_batch_size: int,
        intra_op_threads: int = 0,
        deterministic: bool = True,
        manifest_sha256: str | None = None,
    ) -> None:
        import onnxruntime as ort

        self.manifest = manifest
        self.manifest_sha256 = manifest_sha256
        self.device = device
        self.variant = variant
        self.tokenizer = tokenizer
        self._max_batch_size = max_batch_size
        batch_mates_change_scores = variant == "int8"
        self._rows_per_run = 1 if deterministic and batch_mates_change_scores else max_batch_size
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        providers: list[Any] = [_CPU]
        if device == "cuda":
            providers = [(_CUDA, {"device_id": 0}), _CPU]
            options.use_deterministic_compute = True
        try:
            self._session = ort.InferenceSession(
                str(model_path), sess_options=options, providers=providers
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"ONNX Runtime cannot load {model_path}: {exc}") from exc
        if device == "cuda" and self._session.get_providers()[0] != _CUDA:
            raise ProviderUnavailableError(
                "CUDAExecutionProvider failed to start (ONNX Runtime fell back to "
                f"{self._session.get_providers()}); check the CUDA and cuDNN libraries"
            )
        self._input_names = {item.name for item in self._session.get_inputs()}
        self._output_name = self._session.get_outputs()[0].name

    @property
    def max_batch_size(self) -> int:
        return self._max_batch_size

    @property
    def model_sha256(self) -> str:
        return self.manifest.variant(self.variant).sha256

    def model_ref(self) -> ModelRef:
        """What labels record of this model: everything that decides a score."""
        return ModelRef(
            name=self.manifest.name,
            version=self.manifest.version,
            sha256=self.model_sha256,
            manifest_sha256=self.manifest_sha256,
            window_stride=self.tokenizer.window_stride,
        )

    def predict(self, pairs: Sequence[tuple[str, str]]) -> Scores:
        """Probability that each content meets its policy (max over windows)."""
        scores = np.zeros(len(pairs), dtype=np.float32)
        if not pairs:
            return scores
        rows = self.tokenizer.rows(pairs)
        calibration = self.manifest.calibration
        scale = np.float32(calibration.scale if calibration else 1.0)
        bias = np.float32(calibration.bias if calibration else 0.0)
        for batch in length_buckets(rows, self._rows_per_run):
            probabilities = sigmoid(self._logits(batch.rows) * scale + bias)
            for row, probability in zip(batch.rows, probabilities, strict=True):
                scores[row.pair_index] = max(scores[row.pair_index], probability)
        return scores

    def _logits(self, rows: Sequence[TokenRow]) -> npt.NDArray[np.float32]:
        feed = {
            name: array
            for name, array in pad_batch(rows, self.tokenizer.pad_id).items()
            if name in self._input_names
        }
        if self.device == "cuda":
            binding = self._session.io_binding()
            for name, array in feed.items():
                binding.bind_cpu_input(name, array)
            binding.bind_output(self._output_name, "cuda")
            self._session.run_with_iobinding(binding)
            output = binding.copy_outputs_to_cpu()[0]
        else:
            output = self._session.run([self._output_name], feed)[0]
        return np.asarray(output, dtype=np.float32).reshape(len(rows))

    def health(self) -> dict[str, Any]:
        return {
            "model": self.manifest.name,
            "version": self.manifest.version,
            "variant": self.variant,
            "providers": self._session.get_providers(),
            "max_batch_size": self._max_batch_size,
            "rows_per_run": self._rows_per_run,
        }


def load_classifier(settings: Settings, variant: Variant | None = None) -> OnnxClassifier:
    """Load the model folder named by the settings, verifying its hashes first.

    The variant follows the device (int8 on the CPU, fp16 on CUDA) unless one
    is named, as parity checks and benchmarks do.
    """
    import onnxruntime as ort

    device = resolve_provider(settings.provider, ort.get_available_providers())
    manifest = load_manifest(settings.model_dir)
    chosen = variant or _VARIANT_FOR[device]
    model_path = manifest.variant(chosen).verified_path(settings.model_dir)
    tokenizer = PairTokenizer(
        manifest.tokenizer.verified_path(settings.model_dir),
        max_length=manifest.max_length,
        max_policy_tokens=manifest.max_policy_tokens,
        window_stride=settings.window_stride,
    )
    return OnnxClassifier(
        manifest,
        model_path,
        tokenizer,
        device=device,
        variant=chosen,
        max_batch_size=settings.max_batch_size,
        intra_op_threads=settings.intra_op_threads,
        deterministic=settings.deterministic,
        manifest_sha256=sha256_file(settings.model_dir / MANIFEST_NAME),
    )
