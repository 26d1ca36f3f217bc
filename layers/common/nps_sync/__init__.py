"""nps-sync's shared code, the Lambda layer every function imports (docs/architecture.md).

Packages by layer; an import runs only downward (core <- store <- ingest, aggregation,
delivery, query <- web, cli), so the folder tree is the dependency diagram.
"""
