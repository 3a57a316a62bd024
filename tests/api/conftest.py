import pytest
from django.core.cache import cache
from django.test import Client

from api import services
from tests.factories import MarketerFactory


class ApiClient(Client):
    """A test client that sends one token with every request and JSON bodies."""

    def __init__(self, raw_token, **defaults):
        super().__init__(HTTP_AUTHORIZATION=f"Bearer {raw_token}", **defaults)

    def post_json(self, path, data):
        return self.post(path, data=data, content_type="application/json")

    def patch_json(self, path, data):
        return self.patch(path, data=data, content_type="application/json")


@pytest.fixture(autouse=True)
def empty_cache():
    # The tokens' request counts live in the cache, shared by every test of a run.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def alice(db):
    return MarketerFactory(username="alice")


@pytest.fixture
def bob(db):
    return MarketerFactory(username="bob")


@pytest.fixture
def api(alice):
    _, raw = services.create_token(owner=alice, name="Alice's shop")
    return ApiClient(raw)


@pytest.fixture
def bob_api(bob):
    _, raw = services.create_token(owner=bob, name="Bob's CRM")
    return ApiClient(raw)
