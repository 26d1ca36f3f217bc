"""Freshness: from a survey webhook's 2xx to the GET /nps that counts it, under the local runtime.

Starts ``python -m local`` as `make run` does and as tests/e2e do (local.process, a free port,
SEED=0 and STANDINS=0 so that nothing else runs), then sends ``--count`` signed generic survey
webhooks one at a time, each for a new response, and after each one polls ``GET /nps``
(overall, all-time) every 50 ms until its ``n`` includes it. Issue 17 wants the median <= 2 s;
the stream's batching window (MaximumBatchingWindowInSeconds, emulated by local/pollers.py) is
most of it. Prints one JSON line: the seconds of every response, their median and p90.

    .venv/bin/python -m bench.freshness --count 20
"""

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POLL_S = 0.05
TIMEOUT_S = 30.0  # one response not counted by then is reported as a timeout
TARGET_S = 2.0


def percentile(values: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least ``q`` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summary(seconds: list[float | None]) -> dict:
    """Median and p90 over the responses counted; a timeout counts as never (infinite)."""
    counted = [s if s is not None else math.inf for s in seconds]
    return {
        "samples": len(seconds),
        "timeouts": sum(1 for s in seconds if s is None),
        "median_s": statistics.median(counted) if counted else math.inf,
        "p90_s": percentile(counted, 0.9) if counted else math.inf,
        "max_s": max(counted, default=math.inf),
    }


def body(run: str, i: int, now: datetime) -> bytes:
    """A generic survey webhook (docs/providers.md, events/bodies/survey/generic.json) for a
    new response of a new customer, submitted now."""
    answer = {
        "id": f"fresh-{run}-{i}",
        "customer": {"email": f"fresh-{run}-{i}@example.com"},
        "score": i % 11,
        "submitted_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "survey": "bench-freshness",
        "channel": "web",
    }
    return json.dumps([answer], separators=(",", ":")).encode()


def _call(method: str, url: str, data: bytes | None = None, headers: dict | None = None):
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - local only
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def measure(count: int = 20) -> dict:
    sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "common")]
    from local.aws import free_port
    from local.process import start_runtime
    from local.signer import DEV_SECRETS, signed_headers

    token = json.loads(DEV_SECRETS.read_text())["api_tokens"][0]
    auth = {"authorization": f"Bearer {token}"}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-freshness-") as tmp:
        process = start_runtime(
            log=Path(tmp) / "local.log",
            PORT=str(free_port()),
            LOCAL_LOG_LEVEL="WARNING",
            SEED="0",
            STANDINS="0",
        )
        try:
            startup = time.perf_counter() - started
            nps = f"{process.url}/nps?granularity=all"

            def counted() -> int:
                status, series = _call("GET", nps, headers=auth)
                if status != 200:
                    raise RuntimeError(f"GET /nps answered {status}: {series}")
                return series["buckets"][0]["n"]

            n = counted()
            run = f"{int(time.time())}"
            seconds: list[float | None] = []
            for i in range(count):
                data = body(run, i, datetime.now(UTC))
                headers = signed_headers("generic", data)
                status, receipt = _call(
                    "POST", f"{process.url}/webhooks/survey/generic", data, headers
                )
                accepted = time.perf_counter()
                if status // 100 != 2:
                    raise RuntimeError(f"the webhook answered {status}: {receipt}")
                n += 1
                while counted() < n:
                    if time.perf_counter() - accepted > TIMEOUT_S:
                        seconds.append(None)
                        n = counted()  # the next response is measured from where it stands
                        break
                    time.sleep(POLL_S)
                else:
                    seconds.append(time.perf_counter() - accepted)
        finally:
            process.stop()
    return {
        "freshness": True,
        **summary(seconds),
        "seconds": [None if s is None else round(s, 3) for s in seconds],
        "startup_s": round(startup, 1),
        "poll_s": POLL_S,
        "target_s": TARGET_S,
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.freshness", description=__doc__)
    parser.add_argument("--count", type=int, default=20)
    args = parser.parse_args()
    print(json.dumps(measure(args.count)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
