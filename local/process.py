"""``python -m local`` as a child process, the way `make run` starts it, for the end-to-end tests
and ``make load``: started, READY, its output read all along (a runtime writing into a full
pipe would stop in the middle of a line), stopped with Ctrl-C."""

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class NotStarted(RuntimeError):
    """The runtime exited or printed no READY line in time; the message holds its output."""


class LocalRuntime(subprocess.Popen):
    """The runtime's process, with what its start-up lines said (``AWS``, ``READY``, ``LOG``)
    and ``lines``: everything it has written to its stdout and stderr, the seeder's included."""

    url: str
    aws_endpoint: str
    standins: dict[str, str]  # kind -> the URL of its stand-in (``STANDIN`` lines)
    log: Path | None  # its log file (None with LOG=stdout)
    lines: list[str]
    own_group: bool  # started in a session of its own: interrupt() reaches its children too
    reader: threading.Thread

    def interrupt(self) -> None:
        """Ctrl-C: with ``own_group``, to every process of the group, as a terminal sends it."""
        if self.own_group:
            os.killpg(self.pid, signal.SIGINT)
        else:
            self.send_signal(signal.SIGINT)

    def stop(self, timeout: float = 15) -> int:
        """Ctrl-C and its exit code; killed, and TimeoutExpired raised, if it does not end."""
        self.interrupt()
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.wait()
            raise
        finally:
            self.reader.join(timeout=5)

    def terminal(self) -> str:
        return "".join(self.lines)

    def logged(self) -> str:
        return self.log.read_text("utf-8") if self.log is not None and self.log.exists() else ""


def start_runtime(
    *args: str,
    log: Path | str,
    timeout: float = 60,
    own_group: bool = False,
    **env: str,
) -> LocalRuntime:
    """``log``: the LOG variable (a file, or "stdout"); ``env``: more variables (PORT, SEED, …)
    over this process's own, without its AWS_* ones (the runtime starts its own emulator)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environment.update(PYTHONUNBUFFERED="1", LOG=str(log), **env)
    process = LocalRuntime(
        [sys.executable, "-m", "local", *args],
        cwd=ROOT,
        env=environment,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=own_group,
    )
    process.own_group, process.lines, process.log = own_group, [], None
    ready = threading.Event()

    def drain() -> None:
        for line in process.stdout:
            process.lines.append(line)
            if line.startswith("READY "):
                ready.set()
        ready.set()

    process.reader = threading.Thread(target=drain, name="runtime-output", daemon=True)
    process.reader.start()
    said: dict[str, str] = {}
    process.standins = {}
    if ready.wait(timeout):
        for line in list(process.lines):
            word, _, rest = line.partition(" ")
            said.setdefault(word, rest.strip())
            if word == "STANDIN":
                kind, _, url = rest.strip().partition(" ")
                process.standins[kind] = url
            if word == "READY":
                break
    if "READY" not in said or "AWS" not in said:
        process.kill()
        process.wait()
        raise NotStarted("the local runtime did not start:\n" + "".join(process.lines[-50:]))
    process.url, process.aws_endpoint = said["READY"], said["AWS"]
    if "LOG" in said:
        process.log = ROOT / said["LOG"]  # relative to the runtime's directory, or absolute
    return process
