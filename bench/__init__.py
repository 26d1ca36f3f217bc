"""``make bench``: cold starts, adapter cost, DynamoDB requests per response, the cost model."""
