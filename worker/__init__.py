"""The streaming moderation worker: settings, errors, the model runtime and the CLI."""

from worker.errors import CopeError
from worker.settings import Settings

__all__ = ["CopeError", "Settings"]
