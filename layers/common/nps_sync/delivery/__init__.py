"""Everything that leaves nps-sync: the events a batch derives, the fan-out to EventBridge and
the delivery queue, signed webhook delivery with retries and the SSRF guard. Future
destinations (CRM and billing write-back) land here.

May import ``core`` and ``store``; never ``aggregation`` (it receives events, not batches).
"""
