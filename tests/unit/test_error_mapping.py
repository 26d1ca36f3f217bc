"""nps_sync.web.http maps domain errors to HTTP by class hierarchy: a subclass of a mapped error
answers like its parent, an error nothing maps answers 400."""

import json

import pytest

from nps_sync.core.errors import NotFound, NpsSyncError, StorageUnavailable
from nps_sync.web.http import STATUS, error_response


class TableThrottled(StorageUnavailable):
    code = "table_throttled"


class NoSuchSubscription(NotFound):
    pass


class SomethingElse(NpsSyncError):
    code = "something_else"


def answer(error: NpsSyncError) -> tuple[int, dict]:
    response = error_response(error)
    return response.status_code, json.loads(response.body)


@pytest.mark.parametrize("mapped", list(STATUS), ids=lambda cls: cls.__name__)
def test_each_mapped_error_answers_its_status(mapped):
    status, body = answer(mapped("why"))

    assert status == STATUS[mapped]
    assert body == {"error": mapped.code, "message": "why"}


def test_a_subclass_of_storage_unavailable_answers_503_with_its_own_code():
    status, body = answer(TableThrottled("DynamoDB Query failed"))

    assert status == 503
    assert body == {"error": "table_throttled", "message": "DynamoDB Query failed"}


def test_a_subclass_of_not_found_answers_404():
    status, body = answer(NoSuchSubscription("no such subscription"))

    assert status == 404
    assert body == {"error": "not_found", "message": "no such subscription"}


def test_an_error_nothing_maps_still_answers_400():
    status, body = answer(SomethingElse("odd"))

    assert status == 400
    assert body == {"error": "something_else", "message": "odd"}
