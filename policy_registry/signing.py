"""Ed25519 signatures on registry records, so only the registry's writer can steer workers.

Anyone who can produce to the registry topic could otherwise activate any
text. The writer signs each record's key and value; a worker given the public
key applies only records whose signature verifies. The signature travels in a
record header, so the record format is the same with or without signing.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from policy_registry.errors import PolicyError

__all__ = ["SIGNATURE_HEADER", "Signer", "Verifier", "generate_keypair"]

SIGNATURE_HEADER = "cope-signature"


def _signed_bytes(key: bytes, value: bytes) -> bytes:
    # Length-prefixing the key makes (key, value) splits unambiguous.
    return len(key).to_bytes(4, "big") + key + value


class Signer:
    """Signs records with the registry writer's private key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key

    @classmethod
    def from_pem(cls, path: Path) -> Signer:
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise PolicyError(f"cannot load signing key {path}: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise PolicyError(f"signing key {path} is not an Ed25519 private key")
        return cls(key)

    def sign(self, key: bytes, value: bytes) -> bytes:
        return self._key.sign(_signed_bytes(key, value))


class Verifier:
    """Checks record signatures against the registry writer's public key."""

    def __init__(self, public_key: Ed25519PublicKey) -> None:
        self._key = public_key

    @classmethod
    def from_pem(cls, path: Path) -> Verifier:
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except (OSError, ValueError, TypeError) as exc:
            raise PolicyError(f"cannot load registry public key {path}: {exc}") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise PolicyError(f"registry public key {path} is not an Ed25519 public key")
        return cls(key)

    def verify(self, key: bytes | None, value: bytes | None, signature: bytes | None) -> None:
        """Raise PolicyError unless the signature is the writer's over this key and value."""
        if signature is None:
            raise PolicyError("registry record is not signed")
        try:
            self._key.verify(signature, _signed_bytes(key or b"", value or b""))
        except InvalidSignature:
            raise PolicyError("registry record signature does not verify") from None


def generate_keypair(private_path: Path, public_path: Path) -> None:
    """Write a new Ed25519 key pair as PEM files (the private one readable by its owner only)."""
    key = Ed25519PrivateKey.generate()
    private_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private_path.chmod(0o600)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
