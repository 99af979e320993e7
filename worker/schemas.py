"""Wire schemas: content events in, label records and dead letters out.

JSON on the wire, each with a ``schema_version`` so consumers can evolve.
Labels say exactly which policy versions and model produced them, and where
the event came from, so any label can be audited and replayed later.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ContentEvent",
    "DeadLetter",
    "DeadLetterReason",
    "LabelRecord",
    "ModelRef",
    "PolicyResult",
    "SourceCoordinates",
]

DeadLetterReason = Literal[
    "bad_utf8",
    "bad_json",
    "invalid_event",
    "oversized_text",
    "unknown_policy",
    "policy_unusable",
]


class ContentEvent(BaseModel):
    """A piece of content to moderate, as platforms publish it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: Literal[1] = 1
    id: str = Field(min_length=1, max_length=512)
    text: str
    policy_ids: list[str] | None = Field(
        default=None, description="Policies to apply; absent means the configured defaults."
    )
    metadata: dict[str, Any] = Field(default_factory=dict, description="Carried to the label.")


class SourceCoordinates(BaseModel):
    """Where a record came from, so it can be found and replayed."""

    model_config = ConfigDict(frozen=True)

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None


class PolicyResult(BaseModel):
    """The verdict under one policy version."""

    model_config = ConfigDict(frozen=True)

    policy_id: str
    policy_version: int
    policy_sha256: str
    score: float
    decision: bool
    threshold: float


class ModelRef(BaseModel):
    """The exact model that scored a record."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    sha256: str
    manifest_sha256: str | None = Field(
        default=None, description="The manifest fixes the window and policy limits."
    )
    window_stride: int | None = Field(default=None, description="Tokens shared by windows.")


class LabelRecord(BaseModel):
    """One label record per content event, keyed by content id."""

    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = 1
    content_id: str
    results: list[PolicyResult]
    model: ModelRef
    source: SourceCoordinates
    metadata: dict[str, Any] = Field(default_factory=dict)
    latency_ms: float = Field(description="From consuming the record to producing its label.")


class DeadLetter(BaseModel):
    """A record the worker could not label, with its original bytes and why."""

    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = 1
    reason: DeadLetterReason
    detail: str
    source: SourceCoordinates
    original_key_b64: str | None
    original_value_b64: str | None
