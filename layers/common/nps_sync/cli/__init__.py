"""Operator entry points (``python -m nps_sync.cli.<name>``, run by ``make reconcile`` and
``make redrive``). Nothing in the layer imports them; they may import any package.
"""
