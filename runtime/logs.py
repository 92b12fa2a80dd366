"""Structured logs: one JSON object per line for machines, readable lines for people.

Every process calls `configure_logging` once at start. structlog loggers and the standard
library's loggers (Dramatiq, aiohttp.access, Alembic) then go through the same processors
and renderer, so each line carries a timestamp, level, process type, event and whatever
context was bound with `structlog.contextvars.bind_contextvars(request_id=...,
organization_id=..., transaction_id=...)`. Values under secret-looking keys and passwords
inside URLs are masked before rendering: a log line must never carry a credential.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from runtime.settings import Settings

_SECRET_KEY = re.compile(
    r"pass(word|wd)?$|secret|authorization|cookie|api_?key|(^|_)token$|signature", re.I
)
_URL_PASSWORD = re.compile(r"(?P<prefix>\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]+@", re.I)
REDACTED = "[redacted]"

_QUIET_LOGGERS = {  # chatty at INFO about their own internals
    "sqlalchemy": logging.WARNING,
    "urllib3": logging.WARNING,
    "pgserver": logging.WARNING,
    "alembic.runtime.plugins": logging.WARNING,
}


@functools.lru_cache(maxsize=1024)
def _is_secret_key(key: str) -> bool:
    return key != "event" and _SECRET_KEY.search(key) is not None


@functools.lru_cache(maxsize=1024)
def _secret_keys(keys: tuple[str, ...]) -> tuple[str, ...]:
    """The secret-looking keys among a line's: lines repeat a few sets of keys (every access
    line has the same), so each set is looked at once."""
    return tuple(key for key in keys if _is_secret_key(key))


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Mask values under secret-looking keys and the password part of any URL."""
    for key in _secret_keys(tuple(event_dict)):
        if event_dict[key] is not None:
            event_dict[key] = REDACTED
    for key, value in event_dict.items():
        if isinstance(value, str) and "://" in value:
            event_dict[key] = _URL_PASSWORD.sub(r"\g<prefix>***@", value)
    return event_dict


def wants_json(settings: Settings | None, stream: TextIO) -> bool:
    """JSON unless asked for console output, or unless `auto` and a person is watching."""
    choice = settings.log_format if settings else os.environ.get("VAULTCRAFT_LOG_FORMAT", "auto")
    choice = (choice or "auto").strip().lower()
    if choice in {"json", "console"}:
        return choice == "json"
    return not _is_tty(stream)


def configure_logging(
    process: str, settings: Settings | None = None, *, stream: TextIO | None = None
) -> None:
    """Route structlog and standard logging for this process through one renderer."""
    stream = stream or sys.stderr
    as_json = wants_json(settings, stream)

    def add_process(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("process", process)
        return event_dict

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_process,
        redact_secrets,
    ]
    renderer: list[Processor]
    if as_json:
        renderer = [
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_to_json),
        ]
    else:
        renderer = [structlog.dev.ConsoleRenderer(colors=_is_tty(stream))]

    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        # `extra={...}` fields of standard-library calls become fields too (then redacted).
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]  # replaces whatever a library's basicConfig put there
    global _direct
    _direct = _DirectSink(handler, tuple(shared)) if as_json else None
    root.setLevel(logging.INFO)
    for name, level in _QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)


@dataclass(frozen=True)
class _DirectSink:
    """What `info_line` needs to write a JSON line as the configured pipeline would."""

    handler: logging.StreamHandler[TextIO]
    processors: tuple[Processor, ...]


_direct: _DirectSink | None = None


@dataclass(frozen=True)
class _Named:
    """Stands in for the stdlib logger that `add_logger_name` reads the name of."""

    name: str


def info_line(logger: str, event: str, **fields: Any) -> None:
    """Log one INFO line exactly as `structlog.get_logger(logger).info(event, **fields)`
    would in JSON, for lines written on every request: the same processors and renderer,
    without building and dispatching a `logging.LogRecord` (most of a line's cost).
    Anything but the plain JSON setup of `configure_logging` takes the ordinary path."""
    sink, std = _direct, logging.getLogger(logger)
    if sink is None or not _only_root_handles(std, sink.handler):
        structlog.get_logger(logger).info(event, **fields)
        return
    if not std.isEnabledFor(logging.INFO) or not sink.handler.level <= logging.INFO:
        return
    event_dict: EventDict = {**fields, "event": event}
    named = _Named(logger)
    for processor in sink.processors:
        event_dict = processor(named, "info", event_dict)  # type: ignore[assignment]
    line = _to_json(event_dict) + "\n"
    handler = sink.handler
    handler.acquire()
    try:
        handler.stream.write(line)
        handler.flush()
    finally:
        handler.release()


def _only_root_handles(std: logging.Logger, handler: logging.Handler) -> bool:
    """Whether `std`'s records reach nothing but the handler `configure_logging` set up."""
    node: logging.Logger | None = std
    while node is not None and node.parent is not None:
        if node.handlers or not node.propagate:
            return False
        node = node.parent
    return logging.getLogger().handlers == [handler]


def _to_json(obj: object, **_kwargs: object) -> str:
    try:
        return orjson.dumps(obj, default=str).decode()
    except TypeError:  # keys orjson refuses (not str) or integers beyond 64 bits
        return json.dumps(obj, default=str, separators=(",", ":"))


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
