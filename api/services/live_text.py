"""The answers being written, as far as the workers' growth notices tell, ahead of the database.

A worker sends each piece of an answer once (`shared.jobs.Growth`: the text and where it goes) and
saves the whole text in the database only every few seconds. One gateway process joins the pieces
here, so that its followers get every piece at once without a database read each. The database
stays the record: a piece that does not continue what is known (one missed while Redis was away,
or a gateway started mid-answer) is left out, and the next save brings the text up to date.
"""

from __future__ import annotations

from collections import OrderedDict

from shared.jobs import Growth

# Answers followed at once per gateway; the oldest is forgotten first (its next save restores it).
MAX_ANSWERS = 256


class LiveTexts:
    """Per started task, the longest answer so far known to be right. Used from the event loop only."""

    def __init__(self, max_answers: int = MAX_ANSWERS) -> None:
        self.max_answers = max_answers
        self._texts: OrderedDict[str, str] = OrderedDict()

    def grow(self, growth: Growth) -> bool:
        """Join a piece to its answer; True when the answer is now longer than it was."""
        known = self._texts.get(growth.task_id, "")
        if growth.at > len(known):
            return False  # a gap: the next save fills it
        overlap = known[growth.at :]
        if not growth.text.startswith(overlap):
            return False  # disagrees with what was saved: the database is trusted, not the notice
        if len(overlap) == len(growth.text):
            return False  # known already (a repeat)
        self._keep(growth.task_id, known[: growth.at] + growth.text)
        return True

    def current(self, task_id: str, saved: str | None) -> str | None:
        """The answer so far: the saved text, or what the pieces since added to it."""
        known = self._texts.get(task_id)
        if known is not None and known.startswith(saved or ""):
            return known
        if saved:
            self._keep(task_id, saved)  # pieces from here on continue the saved text
        return saved

    def forget(self, task_id: str) -> None:
        self._texts.pop(task_id, None)

    def __len__(self) -> int:
        return len(self._texts)

    def _keep(self, task_id: str, text: str) -> None:
        self._texts[task_id] = text
        self._texts.move_to_end(task_id)
        while len(self._texts) > self.max_answers:
            self._texts.popitem(last=False)
