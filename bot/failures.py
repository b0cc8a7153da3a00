"""The bot's own user errors, and turning any failure into one short, friendly reply.

The bot's errors extend the engine's tree (``core/errors.py``) under ``InputError``, so each
front end's single error handler treats them like any other request the user got wrong:

    InputError
    ├── RateLimited     too many commands from one user or chat; says when to retry
    ├── EngineBusy      too many requests already waiting for the engine
    └── NotAllowed      an admin-only command from someone who is not an admin
"""

from __future__ import annotations

import logging
import math
import secrets

from core.errors import IndexNotReady, InputError, LensError


class RateLimited(InputError):
    """Too many commands in the window; ``retry_after`` is in seconds."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        wait = max(1, math.ceil(retry_after))
        super().__init__(f"You're going a bit fast; try again in {wait} s.")


class EngineBusy(InputError):
    """The engine has as many requests waiting as it is allowed to queue."""

    def __init__(self) -> None:
        super().__init__("The engine is busy right now; please try again in a minute.")


class NotAllowed(InputError):
    """An admin-only command from a non-admin."""

    def __init__(self) -> None:
        super().__init__("Sorry, only the bot's admins can use that command.")


def describe_failure(error: BaseException, log: logging.Logger, context: str) -> str:
    """The reply for a failed command, after logging it with an incident id.

    The user's own mistakes are shown as the engine words them; anything else gets a generic
    sentence with the id, so the detail stays in the log (and no traceback reaches the chat).
    """
    incident = secrets.token_hex(4)
    if isinstance(error, InputError):
        log.info("[%s] %s: %s", incident, context, error)
        return str(error)
    if isinstance(error, IndexNotReady):
        log.warning("[%s] %s: %s", incident, context, error)
        return "The similarity index isn't built yet; an admin needs to run the indexer."
    if isinstance(error, LensError):
        log.error("[%s] %s: %s", incident, context, error, exc_info=error)
        return f"Sorry, that failed on our side: {error} (ref {incident})"
    log.error("[%s] %s failed", incident, context, exc_info=error)
    return f"Sorry, something went wrong on our side (ref {incident})."
