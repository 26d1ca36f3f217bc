"""The RecordsTable stream's consumer: the exactly-once fold of response changes into NPS
counters (marks per shard), segment re-stamps, the revenue-outcome step, and reconcile, the
offline oracle that recomputes everything from the records.

May import ``core``, ``store`` and ``delivery`` (it hands each batch's events to the fan-out).
"""
