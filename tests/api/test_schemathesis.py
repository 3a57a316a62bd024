"""Schemathesis against the published OpenAPI document: generated requests, valid and not, to every
operation with a live token; no answer is a 5xx and every answer matches the document."""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi import checks

from api import services
from config.wsgi import application
from tests.factories import MarketerFactory

schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)


@pytest.fixture
def token():
    owner = MarketerFactory(username="schemathesis")
    return services.create_token(owner=owner, name="schemathesis")[1]


# Transactional: the WSGI handler closes the database connection after each request, which a test
# wrapped in one transaction cannot allow; serialized_rollback keeps the data migrations' rows (the
# Marketers group) for the tests after it.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case, token):
    # Not positive_data_acceptance: the document cannot say every rule (an address's validity, a list's
    # owner), and a schema-valid request that breaks one is rightly a 422.
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"}, excluded_checks=[checks.positive_data_acceptance]
    )
