"""Failures a model reports in words a person can read, each with the kind the task records."""

from __future__ import annotations

from shared.enums import FinishReason


class ModelFailure(Exception):
    """What went wrong, for the user (`user_message`) and for programs (`failure_kind`)."""

    failure_kind = FinishReason.ERROR

    @property
    def user_message(self) -> str:
        return "Something went wrong while writing the answer. Please try again."
