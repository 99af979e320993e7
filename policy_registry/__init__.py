"""Moderation policies: the shipped library (and, later, the versioned registry).

Stands alone at the bottom of the dependency graph: it never imports ``worker``.
"""

from policy_registry.catalog import LIBRARY_DIR, library_ids, library_policy
from policy_registry.errors import CopeError, PolicyError, UnknownPolicyError

__all__ = [
    "LIBRARY_DIR",
    "CopeError",
    "PolicyError",
    "UnknownPolicyError",
    "library_ids",
    "library_policy",
]
