"""What `make run`'s terminal shows of the log records (local/output.py)."""

import io
import logging
import re

from aws_lambda_powertools import Logger

from local.output import Output, Terminal


def terminal() -> tuple[Terminal, io.StringIO, logging.Logger]:
    stream = io.StringIO()
    handler = Terminal(stream)
    log = logging.getLogger("test.local.output")
    log.handlers, log.propagate, log.level = [handler], False, logging.DEBUG
    return handler, stream, log


def request(log: logging.Logger, status: int) -> None:
    log.info(
        "POST /webhooks/survey/{provider} -> %s Fn (3 ms)", status, extra={"http_status": status}
    )


def test_request_lines_warnings_and_errors_are_shown_other_records_are_not():
    _, stream, log = terminal()

    request(log, 202)
    log.info("a runtime detail")
    log.warning("a warning")

    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d POST /webhooks/survey/\{provider\} -> 202 Fn \(3 ms\)", lines[0]
    )
    assert lines[1].endswith(" WARNING test.local.output: a warning")


def test_python_warnings_stay_in_the_file():
    handler, stream, _ = terminal()
    record = logging.LogRecord("py.warnings", logging.WARNING, __file__, 1, "UserWarning", (), None)

    handler.handle(record)

    assert stream.getvalue() == ""


def test_while_seeding_request_lines_are_counted_not_shown():
    handler, stream, log = terminal()
    handler.seeding.set()

    request(log, 202)
    request(log, 202)
    request(log, 503)
    log.error("still shown")

    assert stream.getvalue().splitlines()[-1].endswith("ERROR test.local.output: still shown")
    assert "->" not in stream.getvalue()
    assert handler.while_seeding == {202: 2, 503: 1}


def test_once_stopping_nothing_more_is_shown():
    handler, stream, log = terminal()
    handler.stopping.set()

    request(log, 202)
    log.error("the emulator went away")

    assert stream.getvalue() == ""


def test_a_functions_warnings_reach_the_terminal_past_powertools_root_filter():
    handler, stream, _ = terminal()
    logging.getLogger().addHandler(handler)  # a root handler: powertools filters its records
    try:
        function_log = Logger(service="test-local-output", logger_handler=logging.NullHandler())
        Output(None, handler).show_function_warnings("test-local-output")

        function_log.info("webhook received")
        function_log.warning("aggregate write failed")
    finally:
        logging.getLogger().removeHandler(handler)

    assert (
        stream.getvalue()
        .splitlines()[-1]
        .endswith(" WARNING test-local-output: aggregate write failed")
    )
    assert "webhook received" not in stream.getvalue()
