"""The worker's errors, all under the project's one root, :class:`CopeError`.

Callers (the CLI, the consumer loop) catch that one type and turn it into a
clear message or a dead letter instead of a traceback. The root itself lives
in ``policy_registry`` because that package may not import this one.
"""

from __future__ import annotations

from policy_registry.errors import CopeError, PolicyError

__all__ = [
    "CopeError",
    "ManifestError",
    "ModelError",
    "PolicyTooLongError",
    "ProviderUnavailableError",
]


class ModelError(CopeError):
    """The model cannot be loaded, exported or run."""


class ManifestError(ModelError):
    """Model files are missing, corrupt or do not match their manifest."""


class ProviderUnavailableError(ModelError):
    """The requested ONNX Runtime execution provider cannot start here."""


class PolicyTooLongError(PolicyError):
    """A policy leaves no room for content in the model's window."""

    def __init__(self, token_count: int, limit: int) -> None:
        super().__init__(
            f"policy is {token_count} tokens; the model accepts at most {limit} "
            "policy tokens (shorten the policy)"
        )
        self.token_count = token_count
        self.limit = limit
