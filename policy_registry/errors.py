"""The project's one exception root, defined at the bottom of the dependency graph.

``policy_registry`` never imports ``worker``, so the root lives here and the
worker's own errors derive from it: callers catch ``CopeError`` and get every
deliberate failure of either package.
"""

from __future__ import annotations

__all__ = ["CopeError", "PolicyError", "UnknownPolicyError"]


class CopeError(Exception):
    """Root of every error the project raises deliberately."""


class PolicyError(CopeError):
    """A policy is missing, malformed or unusable."""


class UnknownPolicyError(PolicyError):
    """No policy has the requested id."""
