"""Structured logging: one JSON object per line, shared by structlog and stdlib loggers."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from runtime.logs import REDACTED, configure_logging, info_line
from runtime.settings import Settings


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers, root.level = handlers, level
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


def _settings(log_format: str) -> Settings:
    return Settings.from_env({"VAULTCRAFT_LOG_FORMAT": log_format, "VAULTCRAFT_JWT_SECRET": "x"})


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_carry_process_level_timestamp_and_bound_context() -> None:
    stream = io.StringIO()
    configure_logging("worker", _settings("json"), stream=stream)

    structlog.contextvars.bind_contextvars(request_id="req-1", organization_id="org-9")
    structlog.get_logger("vaultcraft.test").info("Transfer posted.", transfer_id="t-1")

    [line] = _lines(stream)
    assert line["event"] == "Transfer posted."
    assert line["level"] == "info"
    assert line["process"] == "worker"
    assert (line["request_id"], line["organization_id"], line["transfer_id"]) == (
        "req-1",
        "org-9",
        "t-1",
    )
    assert str(line["timestamp"]).endswith("Z")


@pytest.mark.usefixtures("restore_logging")
def test_stdlib_loggers_share_the_renderer() -> None:
    """Dramatiq and aiohttp log through `logging`; their lines are JSON too."""
    stream = io.StringIO()
    configure_logging("web", _settings("json"), stream=stream)

    logging.getLogger("aiohttp.access").info('127.0.0.1 "GET /ready" 200')
    logging.getLogger("dramatiq.worker").warning("Worker %s is slow.", "w1")

    access, worker = _lines(stream)
    assert (access["logger"], access["process"]) == ("aiohttp.access", "web")
    assert worker["event"] == "Worker w1 is slow."
    assert worker["level"] == "warning"


@pytest.mark.usefixtures("restore_logging")
def test_secrets_never_reach_the_log() -> None:
    stream = io.StringIO()
    configure_logging("web", _settings("json"), stream=stream)

    structlog.get_logger().info(
        "Connecting to postgresql://vault:hunter2@db:5432/x",
        password="hunter2",
        authorization="Bearer abc.def",
        jwt_secret="s3cr3t",
        database_url="postgresql://vault:hunter2@db/x",
    )

    text = stream.getvalue()
    assert "hunter2" not in text and "abc.def" not in text and "s3cr3t" not in text
    [line] = _lines(stream)
    assert line["password"] == REDACTED
    assert line["database_url"] == "postgresql://vault:***@db/x"


@pytest.mark.usefixtures("restore_logging")
def test_console_format_is_for_people() -> None:
    stream = io.StringIO()
    configure_logging("relay", _settings("console"), stream=stream)

    structlog.get_logger().info("Relay started.", batch=10)

    output = stream.getvalue()
    assert "Relay started." in output and "batch" in output
    assert not output.startswith("{")


@pytest.mark.usefixtures("restore_logging")
def test_auto_format_is_json_when_not_a_terminal() -> None:
    stream = io.StringIO()  # not a TTY, like supervisord's pipe
    configure_logging("scheduler", _settings("auto"), stream=stream)

    structlog.get_logger().info("Tick.")

    assert _lines(stream)[0]["event"] == "Tick."


@pytest.mark.usefixtures("restore_logging")
def test_extra_fields_of_stdlib_calls_become_fields_and_are_redacted() -> None:
    """Workers log with `logging` and `extra=`; those fields are searchable, never secrets."""
    stream = io.StringIO()
    configure_logging("worker", _settings("json"), stream=stream)

    logging.getLogger("vaultcraft.posting").info(
        "Transfer %s ended FAILED.", "t-1", extra={"transaction_id": "t-1", "api_key": "k-9"}
    )

    [line] = _lines(stream)
    assert (line["event"], line["transaction_id"], line["api_key"]) == (
        "Transfer t-1 ended FAILED.",
        "t-1",
        REDACTED,
    )


@pytest.mark.usefixtures("restore_logging")
def test_direct_info_lines_match_structlog_lines_field_for_field() -> None:
    """The access log's cheap path writes what the ordinary path would, redaction included."""
    stream = io.StringIO()
    configure_logging("gateway", _settings("json"), stream=stream)
    structlog.contextvars.bind_contextvars(request_id="req-7", token="abc.def")

    structlog.get_logger("vaultcraft.access").info("Request answered.", status=202, path="/x")
    info_line("vaultcraft.access", "Request answered.", status=202, path="/x")

    ordinary, direct = _lines(stream)
    assert str(direct.pop("timestamp")).endswith("Z")
    ordinary.pop("timestamp")
    assert list(direct.items()) == list(ordinary.items())
    assert direct["token"] == REDACTED and direct["process"] == "gateway"


@pytest.mark.usefixtures("restore_logging")
def test_direct_info_lines_follow_levels_handlers_and_the_console_format() -> None:
    stream = io.StringIO()
    configure_logging("gateway", _settings("json"), stream=stream)
    logging.getLogger("vaultcraft.quiet").setLevel(logging.WARNING)
    try:
        info_line("vaultcraft.quiet", "Not written.")
    finally:
        logging.getLogger("vaultcraft.quiet").setLevel(logging.NOTSET)
    assert stream.getvalue() == ""

    own = io.StringIO()
    logging.getLogger("vaultcraft.quiet").addHandler(logging.StreamHandler(own))
    try:
        info_line("vaultcraft.quiet", "Also to a handler of its own.")
    finally:
        logging.getLogger("vaultcraft.quiet").handlers.clear()
    assert "Also to a handler of its own." in own.getvalue()
    assert "Also to a handler of its own." in stream.getvalue()

    console = io.StringIO()
    configure_logging("gateway", _settings("console"), stream=console)
    info_line("vaultcraft.access", "Request answered.", status=202)
    assert "Request answered." in console.getvalue() and not console.getvalue().startswith("{")
