"""A job as a feature declares it: a name, a trigger from config, and the work."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core.config import JobTrigger

# The work of one run: returns a one-line summary; raises ``JobSkipped`` when it cannot work
# this time, and anything else when it failed.
Work = Callable[[], Awaitable[str]]


@dataclass(frozen=True)
class Job:
    """A periodic job: the scheduler runs ``work`` on ``trigger``, one run at a time."""

    name: str
    description: str
    trigger: JobTrigger
    work: Work
