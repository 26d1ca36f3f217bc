"""The read side the API answers from: NPS series with margins, the dashboard's overview
(segments, distribution, detractors), revenue outcomes and the at-risk listing, one customer's
view.

Pure functions over the store adapters' reads. May import ``core`` and ``store``.
"""
