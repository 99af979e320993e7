"""Registry records and the state they fold into.

The registry topic is compacted, so each record's key says what it replaces:
``version/<id>/<n>`` records are immutable (written once, never deleted; a
retired version is a state, so old labels stay auditable), and
``pointer/<id>`` holds a policy's active and shadow versions. A pointer keeps
its whole activation history, because compaction will drop older pointers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from policy_registry.errors import PolicyError

__all__ = [
    "Activation",
    "PointerRecord",
    "RegistryRecord",
    "RegistryState",
    "VersionRecord",
    "decode_record",
    "record_key",
]

PolicyId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]


class VersionRecord(BaseModel):
    """One immutable policy version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["version"] = "version"
    policy_id: PolicyId
    version: int = Field(ge=1)
    text: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    threshold: float = Field(gt=0.0, lt=1.0)
    author: str
    created_at: datetime
    notes: str = ""


class Activation(BaseModel):
    """One change of a policy's active version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(ge=1)
    at: datetime
    author: str


class PointerRecord(BaseModel):
    """Which version of a policy is enforced, which is shadowed, and since when."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["pointer"] = "pointer"
    policy_id: PolicyId
    active_version: int | None = Field(default=None, ge=1)
    shadow_version: int | None = Field(default=None, ge=1)
    history: list[Activation] = Field(default_factory=list)


RegistryRecord = Annotated[VersionRecord | PointerRecord, Field(discriminator="kind")]
_RECORD: TypeAdapter[VersionRecord | PointerRecord] = TypeAdapter(RegistryRecord)


def record_key(record: VersionRecord | PointerRecord) -> str:
    """The compaction key: what a record replaces."""
    if isinstance(record, VersionRecord):
        return f"version/{record.policy_id}/{record.version}"
    return f"pointer/{record.policy_id}"


def decode_record(key: bytes | None, value: bytes | None) -> VersionRecord | PointerRecord:
    """A record from the topic, checked against its key; PolicyError if unusable."""
    if value is None:
        raise PolicyError("registry record has no value (tombstones are never written)")
    try:
        record = _RECORD.validate_json(value)
    except ValidationError as exc:
        raise PolicyError(f"unreadable registry record: {exc.errors()[0]['msg']}") from exc
    if key is None or key.decode("utf-8", "replace") != record_key(record):
        raise PolicyError(f"registry record key {key!r} does not match its content")
    return record


@dataclass
class RegistryState:
    """Everything read from the registry topic so far (a pure fold of its records)."""

    versions: dict[str, dict[int, VersionRecord]] = field(default_factory=dict)
    pointers: dict[str, PointerRecord] = field(default_factory=dict)

    def apply(self, record: VersionRecord | PointerRecord) -> None:
        if isinstance(record, VersionRecord):
            known = self.versions.setdefault(record.policy_id, {})
            known.setdefault(record.version, record)  # versions never change once written
        else:
            self.pointers[record.policy_id] = record

    def version(self, policy_id: str, version: int) -> VersionRecord | None:
        return self.versions.get(policy_id, {}).get(version)

    def next_version(self, policy_id: str) -> int:
        return max(self.versions.get(policy_id, {}), default=0) + 1

    def enforced(self) -> dict[str, VersionRecord]:
        """Active version of every policy that has one (and whose version is known)."""
        enforced = {}
        for policy_id, pointer in self.pointers.items():
            if pointer.active_version is not None:
                record = self.version(policy_id, pointer.active_version)
                if record is not None:
                    enforced[policy_id] = record
        return enforced

    def shadowed(self) -> dict[str, VersionRecord]:
        """Shadow version of every policy that has one."""
        shadowed = {}
        for policy_id, pointer in self.pointers.items():
            if pointer.shadow_version is not None:
                record = self.version(policy_id, pointer.shadow_version)
                if record is not None:
                    shadowed[policy_id] = record
        return shadowed
