"""``python -m local``: run nps-sync on this machine (what ``make run`` does)."""

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading

from .runtime import Runtime


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
    logging.basicConfig(
        level=os.environ.get("LOCAL_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    for noisy in ("werkzeug", "botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    runtime = Runtime(args.host, args.port, aws_port=args.aws_port).start()
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    print(f"AWS {runtime.emulator.endpoint}", flush=True)
    print(f"READY {runtime.url}", flush=True)
    seeder = None
    if os.environ.get("SEED", "1") != "0":  # demo data (local/seed.py); SEED=0 starts empty
        count = os.environ.get("SEED_CUSTOMERS", "2000")
        command = [sys.executable, "-m", "local.seed", "--url", runtime.url, "--count", count]
        seeder = subprocess.Popen(command)  # noqa: S603 - our own module
    done.wait()
    print("stopping", file=sys.stderr, flush=True)
    if seeder is not None and seeder.poll() is None:
        seeder.terminate()
    runtime.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
