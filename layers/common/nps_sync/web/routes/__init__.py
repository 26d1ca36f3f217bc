"""The query API's routes, one powertools ``Router`` per area, joined in ``nps_sync.web.api``.

Each area's ``router(services)`` takes the resolver's ``services`` callable (its collaborators,
built on first use); bearer-token auth, validation errors and domain errors are the resolver's.
"""
