"""Powertools singletons, configured by the POWERTOOLS_* variables set in template.yaml Globals.

Importing this module creates no AWS client; Tracer only patches botocore when tracing is on.
"""

import hashlib
import os

from aws_lambda_powertools import Logger, Metrics

import nps_sync.core.snapstart  # noqa: F401 - registers SnapStart's restore hook (docs/cost.md)


class Untraced:
    """Tracer's stand-in where tracing is off (POWERTOOLS_TRACE_DISABLED, as the webhook
    receivers set it): powertools' Tracer imports the X-Ray SDK even when disabled, and that
    import creates two botocore clients, ~130 ms of every cold start (docs/decisions.md)."""

    def capture_lambda_handler(self, handler=None, **_options):
        return handler if handler is not None else (lambda inner: inner)


def _tracer():
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() in ("1", "true"):
        return Untraced()
    from aws_lambda_powertools import Tracer

    return Tracer()


logger = Logger()
tracer = _tracer()
metrics = Metrics()


def customer_ref(customer_key: str) -> str:
    """What a log line says instead of a customer key (an e-mail, often): a short SHA-256
    prefix, the same for the same key in every line and run, so an operator can follow one
    customer or check a suspected key, but the line itself holds no address (docs/security.md)."""
    return "cust_" + hashlib.sha256(customer_key.encode()).hexdigest()[:12]
