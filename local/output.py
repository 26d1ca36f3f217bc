"""Where `make run` writes (docs/local.md, "The terminal and the log file").

By default the terminal shows the start-up lines (``LOG``, ``AWS``, ``READY``), one line per
HTTP request the gateway answers, the seeder's progress bar, and warnings and errors (the
runtime's and the functions'). The log file holds everything, as a function's log stream would:
the powertools JSON lines and EMF metric lines the functions print, and every record of the
runtime's own loggers, request lines included. While the seeder runs, its bar owns the
terminal: request lines go to the log file only and are summed up in one line when it ends.
``LOG=stdout`` puts everything on the terminal instead, as before; ``LOG=<path>`` names the file.
"""

import logging
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import TextIO

DEFAULT_LOG = Path(__file__).resolve().parent.parent / ".nps-sync" / "local.log"
FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"  # the log file's, and LOG=stdout's
CLEAR_LINE = "\r\x1b[K"


class Terminal(logging.Handler):
    """The terminal's share of the log records: warnings and errors, and the gateway's request
    lines (records with an ``http_status``), which are only counted while the seeder runs.
    Python's warnings stay in the file: the functions' (powertools' "No application metrics to
    publish") are their output, as their stderr is in Lambda."""

    def __init__(self, stream: TextIO):
        super().__init__()
        self.stream = stream
        self.seeding = threading.Event()
        self.stopping = threading.Event()  # after Ctrl-C: what the teardown cuts short is logged
        self.while_seeding: Counter[int] = Counter()
        self.setFormatter(_Compact("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        status = getattr(record, "http_status", None)
        if self.stopping.is_set() or record.name == "py.warnings":
            return
        if status is None and record.levelno < logging.WARNING:
            return
        if status is not None and self.seeding.is_set():
            self.while_seeding[status] += 1  # emit runs under the handler's lock
            return
        self.write(self.format(record))

    def write(self, text: str) -> None:
        if self.seeding.is_set() and self.stream.isatty():
            text = CLEAR_LINE + text  # over the bar, which the seeder draws again below it
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except OSError:
            pass  # a closed terminal must not stop the runtime


class _Warnings(logging.Handler):
    """A function logger's warnings and errors, to the terminal. Not the terminal's handler
    itself: powertools puts a filter on every root handler that drops its loggers' records."""

    def __init__(self, terminal: Terminal):
        super().__init__(logging.WARNING)
        self.terminal = terminal

    def emit(self, record: logging.LogRecord) -> None:
        self.terminal.emit(record)


class _Compact(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if hasattr(record, "http_status"):
            return f"{self.formatTime(record, self.datefmt)} {record.getMessage()}"
        return super().format(record)


class Output:
    def __init__(self, log: Path | None, terminal: Terminal | None):
        self.log = log
        self.terminal = terminal
        self.stdout = sys.stdout  # the terminal's, even once the functions' output is redirected

    @property
    def log_name(self) -> str:
        """The log file as the user can type it: relative to the current directory if inside."""
        assert self.log is not None
        try:
            return str(self.log.resolve().relative_to(Path.cwd()))
        except ValueError:
            return str(self.log)

    def say(self, line: str) -> None:
        print(line, file=self.stdout, flush=True)

    def show_function_warnings(self, logger_name: str) -> None:
        """The functions' powertools logger (named after POWERTOOLS_SERVICE_NAME) keeps its own
        handler, the log file; their warnings and errors reach the terminal too."""
        if self.terminal is not None:
            logging.getLogger(logger_name).addHandler(_Warnings(self.terminal))

    def seeding(self, seeder: subprocess.Popen) -> None:
        """The seeder's bar owns the terminal until it ends; then one line sums up its requests."""
        if self.terminal is None:
            return
        terminal = self.terminal
        terminal.seeding.set()

        def watch() -> None:
            seeder.wait()
            with terminal.lock:
                terminal.seeding.clear()
                counts, terminal.while_seeding = terminal.while_seeding, Counter()
            if counts and not terminal.stopping.is_set():
                statuses = ", ".join(f"{n} x {status}" for status, n in sorted(counts.items()))
                terminal.write(
                    f"{sum(counts.values())} requests while seeding ({statuses}), "
                    f"one line each in {self.log_name}"
                )

        threading.Thread(target=watch, name="seeding", daemon=True).start()

    def stopping(self) -> None:
        if self.terminal is not None:
            self.terminal.stopping.set()


def configure(destination: str = "", level: str = "INFO") -> Output:
    """``destination``: the LOG variable ("" for the default file, "stdout", or a path)."""
    if destination.lower() == "stdout":
        logging.basicConfig(level=level, format=FORMAT)
        return Output(None, None)
    log = Path(destination) if destination else DEFAULT_LOG
    log.parent.mkdir(parents=True, exist_ok=True)
    log_file = log.open("w", encoding="utf-8", buffering=1)  # line by line: `tail -f` it
    terminal = Terminal(sys.stderr)
    output = Output(log, terminal)
    # What the functions print (powertools' handler is created on sys.stdout when a handler
    # module is imported; EMF lines are printed) goes to the file, as to CloudWatch Logs.
    sys.stdout = log_file
    file_handler = logging.StreamHandler(log_file)
    file_handler.setFormatter(logging.Formatter(FORMAT))
    logging.basicConfig(level=level, handlers=[file_handler, terminal])
    logging.captureWarnings(True)
    return output
