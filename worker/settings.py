"""The one settings object, read from the environment (prefix ``COPE_``).

Frozen so that nothing changes a setting behind the loop's back, and flat so
that Helm can set every option as an environment variable.
"""

from __future__ import annotations

import socket
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

    # Kafka: names from the design's Contracts section.
    kafka_bootstrap: str = Field(default="127.0.0.1:9092", min_length=1)
    kafka_options: dict[str, str] = Field(
        default_factory=dict,
        description="librdkafka options passed through untouched (JSON), e.g. security.",
    )
    policy_source: Literal["registry", "library"] = Field(
        default="registry",
        description="registry: versions from the compacted topic; library: shipped v1 texts.",
    )
    registry_topic: str = "cope.policies"
    registry_catch_up_s: float = Field(default=60.0, gt=0)
    registry_public_key: Path | None = Field(
        default=None, description="Ed25519 PEM: apply only registry records it verifies."
    )
    registry_signing_key: Path | None = Field(
        default=None, description="Ed25519 PEM private key: `cope policy` signs what it writes."
    )
    content_topic: str = "content.events"
    labels_topic: str = "content.labels"
    dlq_topic: str = "content.dlq"
    shadow_labels_topic: str = "content.labels.shadow"
    group_id: str = "cope-worker"
    transactional_id: str = Field(
        default_factory=lambda: f"cope-worker-{socket.gethostname()}",
        description="Stable per worker instance, so a restarted worker fences its zombie.",
    )
    batch_max_events: int = Field(default=64, ge=1, le=10_000)
    batch_max_wait_ms: int = Field(default=250, ge=1)
    batch_time_budget_s: float = Field(
        default=10.0,
        gt=0,
        description="Target seconds of inference per batch; the batch size adapts to it.",
    )
    transaction_timeout_ms: int = Field(default=60_000, ge=1000)
    max_poll_interval_ms: int = Field(default=300_000, ge=1000)
    default_policy_ids: list[str] = Field(
        default_factory=lambda: ["hate", "harassment", "violence", "self-harm", "sexual"]
    )
    decision_threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    max_text_chars: int = Field(default=20_000, ge=1)
    metrics_port: int = Field(default=9464, ge=0, le=65535, description="0 disables the server.")

    # The rollout monitor (`cope monitor`), a separate process off the hot path.
    monitor_window_s: int = Field(default=300, ge=1, description="Tumbling window length.")
    monitor_alert_delta: float = Field(
        default=0.1,
        gt=0.0,
        lt=1.0,
        description="Alert when a new or shadow version's flag rate moves more than this.",
    )
    monitor_min_events: int = Field(
        default=20, ge=1, description="Labels a version needs in a window before it can alert."
    )
    monitor_web_port: int = Field(
        default=6066, ge=1024, le=65535, description="/rates (JSON) and /metrics (Prometheus)."
    )
