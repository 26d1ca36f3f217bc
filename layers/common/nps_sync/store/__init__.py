"""Every AWS storage call: DynamoDB (RecordsTable, AggregatesTable, SubscriptionsTable) and the
secrets document. The item layout (pk/sk names, indexes) is named here and nowhere above.

Adapters take a boto3 client (a real default; tests pass moto's), turn storage failures into
``core.errors.StorageUnavailable`` at their boundary, and return core models or plain
values. May import ``core`` only.
"""
