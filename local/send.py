"""``python -m local.send <kind> <provider> <body.json> [--url URL]``: sign a body with the dev
secrets the way the provider would, and POST it to the local runtime."""

import argparse
import sys
import urllib.error
import urllib.request
from pathlib import Path

from .events import target
from .signer import signed_headers


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m local.send", description=__doc__)
    parser.add_argument("kind", choices=["survey", "crm", "billing"])
    parser.add_argument("provider")
    parser.add_argument("body", type=Path)
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    args = parser.parse_args()
    body = args.body.read_bytes()
    if not args.url.startswith(("http://", "https://")):
        parser.error("--url must be http(s)")
    url = f"{args.url}{target(args.kind, args.provider)}"
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url, data=body, method="POST", headers=signed_headers(args.provider, body, url=url)
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - scheme checked above
            status, text = answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    print(status, text)
    return 0 if status < 400 else 1


if __name__ == "__main__":
    sys.exit(main())
