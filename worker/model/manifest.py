"""The model manifest: what a model folder holds and the hashes that prove it.

Every label names the model that produced it, so a model folder is only
trusted when each file matches the sha256 its manifest records. A corrupt or
swapped file is caught at load time with a clear error, not as a crash or a
silently different score later.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from worker.errors import ManifestError

__all__ = [
    "MANIFEST_NAME",
    "Calibration",
    "Manifest",
    "ModelFile",
    "Variant",
    "load_manifest",
    "sha256_file",
]

MANIFEST_NAME = "manifest.json"

Variant = Literal["fp32", "fp16", "int8"]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so large models stay out of memory."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ModelFile(BaseModel):
    """A file of the model folder and its expected hash."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    def verified_path(self, folder: Path) -> Path:
        """The file's path, after checking it exists and matches its hash."""
        if Path(self.file).name != self.file:
            raise ManifestError(f"manifest names {self.file!r}; only plain file names are allowed")
        path = folder / self.file
        if not path.is_file():
            raise ManifestError(f"model file {path} named in the manifest is missing")
        actual = sha256_file(path)
        if actual != self.sha256:
            raise ManifestError(
                f"model file {path} does not match its manifest "
                f"(sha256 {actual[:12]}…, expected {self.sha256[:12]}…): corrupt or replaced"
            )
        return path


class Calibration(BaseModel):
    """``score = sigmoid(scale * logit + bias)``, fitted once across many policies."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scale: float = Field(gt=0.0)
    bias: float
    pairs: int = Field(ge=0, description="pairs the fit used")
    policies: int = Field(ge=0, description="distinct policies among them")


class Manifest(BaseModel):
    """Identity, limits and file hashes of one exported model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    base_model: str
    max_length: int = Field(gt=8, le=8192)
    max_policy_tokens: int = Field(gt=0)
    threshold: float = Field(gt=0.0, lt=1.0)
    tokenizer: ModelFile
    variants: dict[Variant, ModelFile]
    calibration: Calibration | None = None

    def variant(self, name: Variant) -> ModelFile:
        """The file of one variant, or a clear error naming the ones present."""
        try:
            return self.variants[name]
        except KeyError:
            present = ", ".join(sorted(self.variants)) or "none"
            raise ManifestError(
                f"model {self.name} {self.version} has no {name} variant (present: {present}); "
                "run `cope model export` to build it"
            ) from None

    def write(self, folder: Path) -> Path:
        """Write the manifest beside the files it describes."""
        path = folder / MANIFEST_NAME
        path.write_text(json.dumps(self.model_dump(), indent=2, sort_keys=True) + "\n")
        return path


def load_manifest(folder: Path) -> Manifest:
    """Read and validate ``manifest.json`` of a model folder."""
    path = folder / MANIFEST_NAME
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"no {MANIFEST_NAME} in model folder {folder}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"unreadable manifest {path}: {exc}") from exc
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        raise ManifestError(f"invalid manifest {path}: {exc}") from exc
