"""The policy library that ships in `policy_registry/library/`.

CoPE-format policies written for the categories of the public data sets, so a
team starts from well-formed policies and the demo, tests and training all
read the same texts.
"""

from __future__ import annotations

from pathlib import Path

from policy_registry.errors import UnknownPolicyError

__all__ = ["LIBRARY_DIR", "library_ids", "library_policy"]

LIBRARY_DIR = Path(__file__).parent / "library"


def library_ids() -> list[str]:
    """Ids of the shipped policies (their file names without ``.md``)."""
    return sorted(path.stem for path in LIBRARY_DIR.glob("*.md") if path.stem != "README")


def library_policy(policy_id: str) -> str:
    """Text of a shipped policy, or a clear error listing the ids there are."""
    path = LIBRARY_DIR / f"{policy_id}.md"
    if policy_id not in library_ids() or not path.is_file():
        raise UnknownPolicyError(
            f"no library policy {policy_id!r}; known: {', '.join(library_ids())}"
        )
    return path.read_text(encoding="utf-8")
