"""What the gateway does, apart from HTTP: the routes call these and stay thin."""

from __future__ import annotations


class QueueUnavailable(Exception):
    """Redis cannot be reached; nothing was queued."""


class QueueFull(Exception):
    """Too many tasks are waiting; the request was refused."""


class NotFound(Exception):
    """No such task (or user); the message says which."""


class Conflict(Exception):
    """The request does not fit the task's current state; the message says why."""
