"""The one settings object, read from the environment (prefix ``COPE_``).

Frozen so that nothing changes a setting behind the loop's back, and flat so
that Helm can set every option as an environment variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["SHIPPED_MODEL_DIR", "Provider", "Settings"]

SHIPPED_MODEL_DIR = Path(__file__).parent / "model" / "shipped"

Provider = Literal["auto", "cuda", "cpu"]


class Settings(BaseSettings):
    """Every option of the worker; ``COPE_<NAME>`` overrides each."""

    model_config = SettingsConfigDict(env_prefix="COPE_", frozen=True, extra="ignore")

    model_dir: Path = Field(
        default=SHIPPED_MODEL_DIR,
        description="Folder with manifest.json and the exported ONNX files.",
    )
    provider: Provider = Field(
        default="auto",
        description="auto: CUDA when onnxruntime offers it, else the CPU.",
    )
    intra_op_threads: int = Field(
        default=0, ge=0, description="CPU threads per inference; 0 lets ONNX Runtime decide."
    )
    max_batch_size: int = Field(default=32, ge=1, le=1024)
    deterministic: bool = Field(
        default=True,
        description=(
            "int8 runs each window alone: its activation scales are per tensor, so "
            "batch mates would move a score in the last digits."
        ),
    )
    window_stride: int = Field(
        default=64, ge=0, description="Tokens shared by consecutive windows of long content."
    )
