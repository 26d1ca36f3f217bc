"""The domain, pure: canonical records and the stored-response model, NPS arithmetic, periods,
identity rules, the aggregate and outcome arithmetic, signing formulas, errors, settings and
the observability singletons.

Imports nothing from the other packages and creates no AWS client (no boto3 here), so every
layer can use it and a unit test needs no moto.
"""
