"""Powertools singletons, configured by the POWERTOOLS_* variables set in template.yaml Globals.

Importing this module creates no AWS client; Tracer only patches botocore when tracing is on.
"""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()
