"""Structured logs: JSON when not a terminal, a request id on every line.

Our own events skip the standard library's records and formatter: each is rendered once and
written straight to the root handler's stream, which keeps one access-log line per request
cheap. Levels still come from `logging`, and third-party records (uvicorn, tortoise) go
through the same handler and processors, so every line looks alike.

Access-log lines, one per request, are written in batches: a write and a flush per request
cost more than the line. A batch goes out when it holds `_BATCH_LINES` lines, at most
`_BATCH_SECONDS` after its first line, before any other line (so lines stay in order) and at
exit.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import time
from typing import Any, TextIO

import orjson
import structlog
from asgi_correlation_id import correlation_id
from structlog.typing import EventDict, WrappedLogger

# Access-log lines waiting for their batch to be written.
_BATCH_LINES = 256
_BATCH_SECONDS = 0.05


class _Batch:
    def __init__(self) -> None:
        self._lines: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def add(self, line: str) -> None:
        lines = self._lines
        lines.append(line)
        if len(lines) >= _BATCH_LINES:
            self.flush()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # No event loop to come back later (a command, a test): write it now.
            self.flush()
            return
        # A timer left on a loop that has stopped would never fire: arm one on this loop.
        if self._timer is None or self._timer_loop is not loop:
            self._timer = loop.call_later(_BATCH_SECONDS, self.flush)
            self._timer_loop = loop

    def flush(self) -> None:
        # Under the handler's lock: a record logged from another thread flushes too.
        _handler.acquire()
        try:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            lines, self._lines = self._lines, []
            if lines:
                _write(_handler.stream, "\n".join(lines) + "\n")
        except OSError:
            # As `logging` does with a stream it cannot write: say so, and go on serving.
            _handler.handleError(logging.makeLogRecord({"msg": "access log"}))
        finally:
            _handler.release()


def _write(stream: TextIO, text: str) -> None:
    stream.write(text)
    stream.flush()


_batch = _Batch()
atexit.register(_batch.flush)


class _OrderedHandler(logging.StreamHandler[TextIO]):
    """The root handler; access-log lines waiting in their batch go out before a record."""

    def emit(self, record: logging.LogRecord) -> None:
        _batch.flush()
        super().emit(record)


def flush_access_log() -> None:
    """Write the access-log lines still waiting (at shutdown)."""
    _batch.flush()


_handler: logging.StreamHandler[TextIO] = _OrderedHandler(sys.stderr)
# structlog's method names, as `logging` levels.
_LEVEL_OF = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}


class _StreamLogger:
    """The end of structlog's chain: one rendered line, written under the handler's lock."""

    def __init__(self, name: str | None = None, *_: Any) -> None:
        self.name = name or "root"
        self._levels = logging.getLogger(name)

    def enabled_for(self, method_name: str) -> bool:
        levels = self._levels
        return not levels.disabled and levels.isEnabledFor(_LEVEL_OF[method_name])

    def msg(self, message: str) -> None:
        _batch.flush()
        handler = _handler
        handler.acquire()
        try:
            _write(handler.stream, message + "\n")
        finally:
            handler.release()

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def _filter_by_level(logger: _StreamLogger, method_name: str, event: EventDict) -> EventDict:
    if not logger.enabled_for(method_name):
        raise structlog.DropEvent
    return event


def _add_request_id(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    request_id = correlation_id.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


class _UtcTimestamp:
    """ISO 8601 in UTC with microseconds; the date and time are formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, _: WrappedLogger, __: str, event: EventDict) -> EventDict:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        event["timestamp"] = "%s.%06dZ" % (self._prefix, (now - second) * 1_000_000)  # noqa: UP031
        return event


def _fallback(value: object) -> str:
    return repr(value)


def _dumps(event: EventDict, **_: Any) -> str:
    return orjson.dumps(event, default=_fallback, option=orjson.OPT_NON_STR_KEYS).decode()


# What `configure_logging` sets up, for `DirectLogger`; JSON lines until it is called.
_chain: list[structlog.typing.Processor] = [structlog.processors.JSONRenderer(serializer=_dumps)]


def configure_logging(*, level: str = "INFO", as_json: bool | None = None) -> None:
    global _handler
    if as_json is None:
        as_json = not sys.stderr.isatty()
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _UtcTimestamp(),
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(serializer=_dumps)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[_filter_by_level, *shared, structlog.processors.format_exc_info, renderer],
        logger_factory=_StreamLogger,
        wrapper_class=structlog.make_filtering_bound_logger(logging.NOTSET),
        cache_logger_on_first_use=True,
    )
    _batch.flush()
    handler = _OrderedHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    _handler = handler
    _chain[:] = [*shared, renderer]
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Our own access log (path without query string) replaces uvicorn's.
    logging.getLogger("uvicorn.access").disabled = True
    for noisy in ("tortoise", "aiosqlite", "asyncpg", "tortoise.db_client"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class DirectLogger:
    """For one event logged on every request (the access log): the same processors and the
    same line as any other logger, minus structlog's per-call wrapping, which costs more
    than the line itself at thousands of requests a second, written in batches. Only `info`
    and no exceptions, on purpose: anything else belongs to `get_logger`."""

    def __init__(self, name: str) -> None:
        self._sink = _StreamLogger(name)

    def info(self, event: str, **fields: Any) -> None:
        sink = self._sink
        if not sink.enabled_for("info"):
            return
        fields["event"] = event
        line: Any = fields
        try:
            for processor in _chain:
                line = processor(sink, "info", line)
        except structlog.DropEvent:
            return
        _batch.add(line)


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    # `configure_logging` makes every logger a filtering bound logger.
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
