from __future__ import annotations

from datetime import UTC, datetime

import pytest

from policy_registry.errors import PolicyError
from policy_registry.records import (
    Activation,
    PointerRecord,
    RegistryState,
    VersionRecord,
    decode_record,
    record_key,
)

NOW = datetime(2026, 11, 29, tzinfo=UTC)


def _version(policy_id: str, number: int, text: str = "t") -> VersionRecord:
    return VersionRecord(
        policy_id=policy_id,
        version=number,
        text=text,
        sha256="a" * 64,
        threshold=0.5,
        author="me",
        created_at=NOW,
    )


def _pointer(policy_id: str, active: int | None, shadow: int | None = None) -> PointerRecord:
    history = [Activation(version=active, at=NOW, author="me")] if active else []
    return PointerRecord(
        policy_id=policy_id, active_version=active, shadow_version=shadow, history=history
    )


def test_records_round_trip_through_their_keys() -> None:
    for record in (_version("hate", 2), _pointer("hate", 2, 3)):
        key = record_key(record).encode()
        assert decode_record(key, record.model_dump_json().encode()) == record
    assert record_key(_version("hate", 2)) == "version/hate/2"
    assert record_key(_pointer("hate", 2)) == "pointer/hate"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (b"version/hate/1", b"{not json", "unreadable registry record"),
        (b"version/hate/9", _version("hate", 1).model_dump_json().encode(), "does not match"),
        (None, _pointer("hate", 1).model_dump_json().encode(), "does not match"),
        (b"pointer/hate", None, "no value"),
        (b"version/x/1", b'{"kind": "version", "policy_id": "BAD ID"}', "unreadable"),
    ],
)
def test_unusable_records_are_policy_errors(
    key: bytes | None, value: bytes | None, message: str
) -> None:
    with pytest.raises(PolicyError, match=message):
        decode_record(key, value)


def test_state_enforces_active_versions_and_shadows_separately() -> None:
    state = RegistryState()
    for record in (
        _version("hate", 1),
        _version("hate", 2),
        _version("spam", 1),
        _pointer("hate", 1, shadow=2),
        _pointer("spam", None),
    ):
        state.apply(record)
    assert {pid: r.version for pid, r in state.enforced().items()} == {"hate": 1}
    assert {pid: r.version for pid, r in state.shadowed().items()} == {"hate": 2}
    state.apply(_pointer("hate", 2))
    assert state.enforced()["hate"].version == 2
    assert state.shadowed() == {}


def test_versions_are_immutable_and_numbers_never_reused() -> None:
    state = RegistryState()
    state.apply(_version("hate", 1, text="original"))
    state.apply(_version("hate", 1, text="forged rewrite"))
    assert state.version("hate", 1).text == "original"  # type: ignore[union-attr]
    assert state.next_version("hate") == 2
    assert state.next_version("new") == 1


def test_a_pointer_to_an_unknown_version_enforces_nothing() -> None:
    state = RegistryState()
    state.apply(_pointer("hate", 5))
    assert state.enforced() == {}
