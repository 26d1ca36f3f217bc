"""HTTP: the query API (powertools routers per area, joined in ``api.resolver``), the
receivers' entry point, the dashboard's files, and the one place that maps domain errors to
HTTP answers (``http``).

Thin: validates, calls a use case, shapes the answer. May import every package but ``cli``.
"""
