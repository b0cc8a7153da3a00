"""Logging for ``python -m bot``: to stderr, with secrets scrubbed from every record."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable


class RedactSecrets(logging.Filter):
    """Replaces each secret with ``[redacted]`` in a record's final message.

    Libraries can put tokens in log lines (an HTTP client logging the Bot API URL, which
    contains the Telegram token); scrubbing at the handler catches every such path at once.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) >= 8}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        exc_text = record.exc_text
        if record.exc_info and not exc_text:
            exc_text = logging.Formatter().formatException(record.exc_info)
        for secret in self._secrets:
            message = message.replace(secret, "[redacted]")
            if exc_text:
                exc_text = exc_text.replace(secret, "[redacted]")
        record.msg, record.args = message, None
        if exc_text is not None:
            record.exc_text, record.exc_info = exc_text, None
        return True


def configure_logging(verbose: bool, secrets: Iterable[str], quiet: bool = False) -> None:
    """Log to stderr; ``quiet`` (the console) shows only warnings unless ``verbose``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # httpx logs every request URL at INFO, and the Bot API URL carries the Telegram token;
    # the filter would scrub it, but the lines are noise anyway.
    for noisy in (
        "httpx",
        "httpcore",
        "tensorflow",
        "absl",
        "h5py",
        "PIL",
        "faiss",
        "asyncio",
        "matplotlib",
        "apscheduler.scheduler",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
