"""Logging as text or JSON lines; every record scrubbed of secret values before it is written."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any

from controller.vocab.sensitive import scrub

CONTEXT_FIELDS = ("object", "action", "reconcile_id")


def timestamp(record: logging.LogRecord) -> str:
    """ISO 8601 in UTC with its offset, so lines from hosts in different zones sort and compare."""
    return datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")


class ScrubFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"time": timestamp(record), "level": record.levelname.lower(),
                               "logger": record.name, "message": record.getMessage()}
        out.update({k: getattr(record, k) for k in CONTEXT_FIELDS if getattr(record, k, None) is not None})
        if record.exc_text:
            out["exception"] = record.exc_text
        return scrub(json.dumps(out, default=str))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(f"{k}={getattr(record, k)}" for k in CONTEXT_FIELDS if getattr(record, k, None))
        line = f"{timestamp(record)} {record.levelname.lower():7} {record.getMessage()}"
        line = f"{line} [{context}]" if context else line
        return scrub(f"{line}\n{record.exc_text}" if record.exc_text else line)


def setup(fmt: str = "text", level: str = "warning") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ScrubFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("botocore", "boto3", "urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(max(root.level, logging.INFO))
    # "Found credentials in environment variables." and "Found endpoint for ssm via: ..." are botocore's
    # INFO on every start and every client: where credentials and endpoints came from is a debugging
    # fact, not news for a daemon's info log
    quiet = logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING
    for chatty in ("botocore.credentials", "botocore.configprovider"):
        logging.getLogger(chatty).setLevel(quiet)
