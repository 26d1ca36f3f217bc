"""Our SQS consumers' batches: powertools' BatchProcessor with a pydantic record model (a
``SqsRecordModel`` whose ``body`` is ``Json[...]`` of the message), answering as our queues'
contract says where BatchProcessor's defaults would not."""

import sys
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import ValidationError

from nps_sync.core.observability import logger


class StaysQueued(Exception):
    """A record handler's expected failure, already logged: the message stays in the queue."""


class SqsBatch(BatchProcessor):
    """``BatchProcessor(EventType.SQS, model=...)``, answering as our queues' contract says:

    - A message whose body does not parse is dropped, ``dropped`` logged, not failed: no
      receive can make it readable, and failed it would only come back until the dead-letter
      queue. A record whose SQS envelope does not parse is failed as BatchProcessor does.
    - A batch whose every message failed is answered like any other, each failure listed
      (``raise_on_entire_batch_failure=False``): SQS keeps them all either way, but raising
      would make an ordinary answer (a subscriber down, HubSpot asking to wait) a Lambda error
      and drop the batch's metrics.
    - A failure the handler did not raise as StaysQueued (a bug) is logged with its traceback;
      BatchProcessor alone would only list it.
    """

    def __init__(self, model: type[SqsRecordModel], dropped: str):
        super().__init__(EventType.SQS, model=model, raise_on_entire_batch_failure=False)
        self.dropped = dropped

    def _register_model_validation_error_record(self, record: dict[str, Any]):
        error = sys.exc_info()[1]  # BatchProcessor calls this while the model's error is handled
        if isinstance(error, ValidationError) and all(
            e["loc"][:1] == ("body",) for e in error.errors()
        ):
            logger.error(self.dropped, extra={"message_id": record.get("messageId")})
            return self.success_handler(record=record, result=None)
        return super()._register_model_validation_error_record(record)

    def failure_handler(self, record, exception):
        if not isinstance(exception[1], StaysQueued):
            logger.error("message failed unexpectedly; it stays in the queue", exc_info=exception)
        return super().failure_handler(record, exception)
