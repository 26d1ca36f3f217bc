"""What the e2e tests send to the local runtime: the dev token, signed generic webhooks
(local.signer, the same signer `make run`'s seeder uses) and JSON requests."""

import json
import urllib.error
import urllib.request

from local.signer import DEV_SECRETS, signed_headers

SECRETS = json.loads(DEV_SECRETS.read_text())
TOKEN = SECRETS["api_tokens"][0]  # a bare string: scope admin (README "Secrets")
AUTH = {"authorization": f"Bearer {TOKEN}"}


def request(method, url, body=None, headers=None):
    """(status, JSON answer) of one request; an HTTP error is an answer too."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=10) as answer:  # noqa: S310 (local http only)
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def post_generic(base: str, kind: str, payload) -> tuple[int, dict]:
    """POST a generic body to /webhooks/<kind>/generic, signed as the provider would."""
    body = json.dumps(payload).encode()
    return request("POST", f"{base}/webhooks/{kind}/generic", body, signed_headers("generic", body))
