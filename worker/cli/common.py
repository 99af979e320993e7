"""What every ``cope`` command shares: settings from flags, model flags, policy lookup."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from policy_registry import library_policy
from worker.errors import CopeError
from worker.settings import Settings

__all__ = ["model_options", "policy_text", "settings_from"]


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings, with any model flags given on the command line winning."""
    overrides: dict[str, Any] = {}
    for name in ("model_dir", "provider", "max_batch_size", "intra_op_threads"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return Settings(**overrides)


def model_options(parser: argparse.ArgumentParser) -> None:
    """Flags that choose and size the model, shared by every command that scores."""
    parser.add_argument("--model-dir", type=Path, help="model folder (default: shipped model)")
    parser.add_argument("--provider", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--max-batch-size", type=int)
    parser.add_argument("--intra-op-threads", type=int)


def policy_text(spec: str) -> tuple[str, str]:
    """A policy given as a library id or a file path: (name, text)."""
    path = Path(spec)
    if path.suffix == ".md" or path.is_file():
        try:
            return path.stem, path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CopeError(f"cannot read policy file {spec}: {exc}") from exc
    return spec, library_policy(spec)
