from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Producer

from policy_registry import library_policy
from policy_registry.errors import PolicyError
from policy_registry.records import Activation, PointerRecord
from policy_registry.signing import SIGNATURE_HEADER, Signer, Verifier, generate_keypair
from policy_registry.store import RegistryReader, RegistryStore, ensure_registry_topic
from tests.kafka_support import unique_prefix


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "registry.key", tmp_path / "registry.pub"
    generate_keypair(private, public)
    return private, public


def test_a_signature_verifies_only_for_its_exact_key_and_value(keys: tuple[Path, Path]) -> None:
    signer, verifier = Signer.from_pem(keys[0]), Verifier.from_pem(keys[1])
    signature = signer.sign(b"pointer/hate", b"{}")
    verifier.verify(b"pointer/hate", b"{}", signature)
    with pytest.raises(PolicyError, match="does not verify"):
        verifier.verify(b"pointer/hate", b"{ }", signature)
    with pytest.raises(PolicyError, match="does not verify"):
        verifier.verify(b"pointer/hat", b"e{}", signature)  # the split is part of what is signed
    with pytest.raises(PolicyError, match="not signed"):
        verifier.verify(b"pointer/hate", b"{}", None)


def test_another_writers_key_does_not_verify(keys: tuple[Path, Path], tmp_path: Path) -> None:
    generate_keypair(tmp_path / "other.key", tmp_path / "other.pub")
    forged = Signer.from_pem(tmp_path / "other.key").sign(b"k", b"v")
    with pytest.raises(PolicyError, match="does not verify"):
        Verifier.from_pem(keys[1]).verify(b"k", b"v", forged)


def test_the_private_key_file_is_private(keys: tuple[Path, Path]) -> None:
    assert keys[0].stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("content", [b"not a key", b""])
def test_unreadable_keys_are_clear_errors(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.pem"
    path.write_bytes(content)
    with pytest.raises(PolicyError, match="cannot load signing key"):
        Signer.from_pem(path)
    with pytest.raises(PolicyError, match="cannot load registry public key"):
        Verifier.from_pem(path)


def test_a_record_forged_without_the_key_changes_nothing_a_verifying_worker_enforces(
    kafka_bootstrap: str, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    topic = f"{unique_prefix()}.policies"
    ensure_registry_topic(kafka_bootstrap, topic)
    signer, verifier = Signer.from_pem(keys[0]), Verifier.from_pem(keys[1])
    store = RegistryStore(kafka_bootstrap, topic, signer=signer, verifier=verifier)
    hate = library_policy("hate")
    store.publish("hate", hate, author="ops", activate=True)
    store.publish("hate", hate + "\nLooser.", author="ops")
    store.close()

    forged = PointerRecord(
        policy_id="hate",
        active_version=2,
        history=[Activation(version=2, at=datetime.now(UTC), author="x")],
    )
    generate_keypair(tmp_path / "attacker.key", tmp_path / "attacker.pub")
    attacker = Signer.from_pem(tmp_path / "attacker.key")
    value = forged.model_dump_json().encode()
    rogue = Producer({"bootstrap.servers": kafka_bootstrap})
    rogue.produce(topic, key=b"pointer/hate", value=value)  # unsigned
    rogue.produce(
        topic,
        key=b"pointer/hate",
        value=value,
        headers=[(SIGNATURE_HEADER, attacker.sign(b"pointer/hate", value))],
    )
    rogue.flush(10)

    verifying = RegistryReader(kafka_bootstrap, topic, verifier=verifier)
    verifying.catch_up()
    trusting = RegistryReader(kafka_bootstrap, topic)
    trusting.catch_up()
    assert verifying.snapshot().enforced["hate"].version == 1
    assert verifying.skipped == 2
    assert trusting.snapshot().enforced["hate"].version == 2  # the forgery would have worked
    verifying.close()
    trusting.close()
