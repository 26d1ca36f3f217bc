"""``python -m local``: run nps-sync on this machine (what ``make run`` does)."""

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading

from . import standins
from .output import configure


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m local", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    parser.add_argument(
        "--aws-port",
        type=int,
        default=int(os.environ.get("AWS_PORT", "0")),
        help="port of the emulated AWS endpoint (default: any free port)",
    )
    args = parser.parse_args()
    done, starting = threading.Event(), threading.Event()

    def stop(*_) -> None:
        done.set()
        if starting.is_set():  # out of start() at once; ``done`` holds if a library swallows it
            starting.clear()
            raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    starting.set()
    output = runtime = None
    try:
        # LOG=stdout: everything on the terminal; else the functions' logs go to a file
        output = configure(os.environ.get("LOG", ""), os.environ.get("LOCAL_LOG_LEVEL", "INFO"))
        for noisy in ("werkzeug", "botocore", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        if output.log is not None:
            output.say(f"LOG {output.log_name}")
        from .runtime import Runtime  # here: Ctrl-C during its imports (moto's) ends quietly too

        runtime = Runtime(args.host, args.port, aws_port=args.aws_port)
        runtime.start()
        starting.clear()
    except KeyboardInterrupt:
        done.set()
    if done.is_set() or output is None or runtime is None:  # Ctrl-C before READY
        if output is not None:
            output.stopping()
        if runtime is not None:
            runtime.stop()
        return 0
    output.show_function_warnings(os.environ.get("POWERTOOLS_SERVICE_NAME", "service_undefined"))
    output.say(f"AWS {runtime.emulator.endpoint}")
    for kind, standin in runtime.standins.items():
        output.say(f"STANDIN {kind} {standin.url}")
    if runtime.standins:  # before READY: what arrives then writes back
        for line in standins.register():
            output.say(line)
    output.say(f"READY {runtime.url}")
    seeder = None
    if os.environ.get("SEED", "1") != "0":  # demo data (local/seed.py); SEED=0 starts empty
        count = os.environ.get("SEED_CUSTOMERS", "2000")
        command = [sys.executable, "-m", "local.seed", "--url", runtime.url, "--count", count]
        seeder = subprocess.Popen(command)  # noqa: S603 - our own module
        output.seeding(seeder)
    done.wait()
    output.stopping()
    print("stopping", file=sys.stderr, flush=True)
    if seeder is not None:
        stop_seeder(seeder)
    runtime.stop()
    return 0


def stop_seeder(seeder: subprocess.Popen) -> None:
    """Before the gateway closes, so that the requests it is sending get their answers. Its own
    Ctrl-C (a terminal's has reached it already): it ends its bar's line and exits."""
    if seeder.poll() is None:
        seeder.send_signal(signal.SIGINT)
    try:
        seeder.wait(timeout=5)
    except subprocess.TimeoutExpired:
        seeder.kill()
        seeder.wait()


if __name__ == "__main__":
    sys.exit(main())
