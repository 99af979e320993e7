"""``cope policy ...``: publish, activate, roll back and inspect policy versions.

The model's token counter is handed in by the caller (the worker's CLI), so
this package still knows no model.
"""

from __future__ import annotations

import argparse
import difflib
import getpass
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policy_registry.catalog import library_ids, library_policy
from policy_registry.errors import PolicyError
from policy_registry.records import VersionRecord
from policy_registry.signing import Signer, Verifier, generate_keypair
from policy_registry.store import RegistryStore, ensure_registry_topic

__all__ = ["RegistryConnection", "add_policy_commands"]


@dataclass(frozen=True)
class RegistryConnection:
    """Where the registry lives and how to size policies for the model in use."""

    bootstrap: str
    topic: str
    options: dict[str, str]
    count_tokens: Callable[[str], int] | None = None
    max_policy_tokens: int | None = None

    signing_key: Path | None = None
    public_key: Path | None = None

    def open_store(self) -> RegistryStore:
        signer = Signer.from_pem(self.signing_key) if self.signing_key else None
        verifier = Verifier.from_pem(self.public_key) if self.public_key else None
        return RegistryStore(
            self.bootstrap,
            self.topic,
            self.options,
            self.count_tokens,
            self.max_policy_tokens,
            signer,
            verifier,
        )


Connect = Callable[[argparse.Namespace], RegistryConnection]


def _version_summary(record: VersionRecord) -> dict[str, Any]:
    return {
        "policy_id": record.policy_id,
        "version": record.version,
        "sha256": record.sha256,
        "threshold": record.threshold,
        "author": record.author,
        "created_at": record.created_at.isoformat(),
        "notes": record.notes,
    }


def _parse_ref(ref: str) -> tuple[str, int | None]:
    policy_id, _, version = ref.partition("@")
    if version and not version.isdigit():
        raise PolicyError(f"bad policy reference {ref!r}; use ID or ID@VERSION")
    return policy_id, int(version) if version else None


def _require(store: RegistryStore, policy_id: str, version: int) -> VersionRecord:
    record = store.reader.state.version(policy_id, version)
    if record is None:
        raise PolicyError(f"{policy_id} has no version {version}")
    return record


def _run(args: argparse.Namespace, connect: Connect) -> int:
    command = args.policy_command
    if command == "keygen":
        generate_keypair(Path(args.private), Path(args.public))
        print(json.dumps({"private": args.private, "public": args.public}))
        return 0
    connection = connect(args)
    if command == "init":
        ensure_registry_topic(connection.bootstrap, connection.topic, connection.options)
        print(json.dumps({"topic": connection.topic}))
        return 0
    store = connection.open_store()
    try:
        return _dispatch(command, args, store)
    finally:
        store.close()


def _dispatch(command: str, args: argparse.Namespace, store: RegistryStore) -> int:
    state = store.reader.state
    author = args.author or getpass.getuser()
    if command == "seed":
        seeded = []
        for policy_id in library_ids():
            if policy_id not in state.pointers:
                store.publish(
                    policy_id,
                    library_policy(policy_id),
                    author=author,
                    notes="seeded from the shipped library",
                    activate=True,
                )
                seeded.append(policy_id)
        print(json.dumps({"seeded": seeded}))
    elif command == "publish":
        text = Path(args.file).read_text(encoding="utf-8")
        record = store.publish(
            args.id,
            text,
            threshold=args.threshold,
            author=author,
            notes=args.notes,
            activate=args.activate,
            shadow=args.shadow,
        )
        print(json.dumps(_version_summary(record)))
    elif command == "activate":
        print(store.activate(args.id, args.version, author=author).model_dump_json())
    elif command == "rollback":
        print(store.rollback(args.id, author=author).model_dump_json())
    elif command == "list":
        for policy_id in sorted(state.versions):
            pointer = state.pointers.get(policy_id)
            print(
                json.dumps(
                    {
                        "policy_id": policy_id,
                        "versions": len(state.versions[policy_id]),
                        "active": pointer.active_version if pointer else None,
                        "shadow": pointer.shadow_version if pointer else None,
                    }
                )
            )
    elif command == "show":
        policy_id, version = _parse_ref(args.ref)
        pointer = state.pointers.get(policy_id)
        chosen = version or (pointer.active_version if pointer else None)
        if chosen is None:
            raise PolicyError(f"{policy_id} has no active version; name one as {policy_id}@N")
        record = _require(store, policy_id, chosen)
        print(json.dumps(_version_summary(record)))
        print(record.text)
    elif command == "history":
        pointer = state.pointers.get(args.id)
        for activation in pointer.history if pointer else []:
            print(activation.model_dump_json())
    elif command == "diff":
        old, new = (_require(store, args.id, v) for v in (args.v1, args.v2))
        print(
            "".join(
                difflib.unified_diff(
                    old.text.splitlines(keepends=True),
                    new.text.splitlines(keepends=True),
                    f"{args.id}@{args.v1}",
                    f"{args.id}@{args.v2}",
                )
            ),
            end="",
        )
    return 0


def add_policy_commands(commands: Any, connect: Connect) -> Any:
    """Register ``policy`` and its verbs; return the verbs, for callers to add more."""
    policy = commands.add_parser("policy", help="the versioned policy registry")
    verbs = policy.add_subparsers(dest="policy_command", required=True)

    def verb(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = verbs.add_parser(name, help=help_text)
        parser.add_argument("--author", help="recorded with the change (default: login name)")
        parser.set_defaults(handler=lambda args: _run(args, connect))
        return parser

    verb("init", "create the registry topic (compacted, one partition)")
    keygen = verb("keygen", "write an Ed25519 key pair for signing registry records")
    keygen.add_argument("private", help="private key PEM (COPE_REGISTRY_SIGNING_KEY)")
    keygen.add_argument("public", help="public key PEM (COPE_REGISTRY_PUBLIC_KEY)")
    verb("seed", "publish and activate every shipped library policy not yet registered")
    publish = verb("publish", "validate and store a new version")
    publish.add_argument("file")
    publish.add_argument("--id", required=True)
    publish.add_argument("--threshold", type=float, default=0.5)
    publish.add_argument("--notes", default="")
    mode = publish.add_mutually_exclusive_group()
    mode.add_argument("--activate", action="store_true")
    mode.add_argument("--shadow", action="store_true")
    activate = verb("activate", "enforce a stored version")
    activate.add_argument("id")
    activate.add_argument("version", type=int)
    verb("rollback", "re-activate the previously active version").add_argument("id")
    verb("list", "policies with their active and shadow versions")
    verb("show", "one version's metadata and text").add_argument("ref", help="ID or ID@VERSION")
    verb("history", "activations of a policy, oldest first").add_argument("id")
    diff = verb("diff", "unified diff of two versions")
    diff.add_argument("id")
    diff.add_argument("v1", type=int)
    diff.add_argument("v2", type=int)
    return verbs
