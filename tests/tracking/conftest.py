from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from campaigns.models import Email
from tests.factories import CampaignFactory, ContactFactory, EmailFactory, MarketerFactory


@pytest.fixture
def owner(db):
    return MarketerFactory(username="olga", organization="Olga's Bakery", postal_address="2 Baker Street, Pune")


@pytest.fixture
def sent_email(owner):
    """An email delivered an hour ago, to a subscribed contact."""
    campaign = CampaignFactory(owner=owner)
    contact = ContactFactory(owner=owner, email="reader@example.org", name="Reader")
    return EmailFactory(
        campaign=campaign,
        contact=contact,
        status=Email.Status.SENT,
        sent_at=timezone.now() - timedelta(hours=1),
        message_id="<x@example.com>",
    )


@pytest.fixture
def anonymous():
    """A client with no cookies and CSRF checks on, like a mail client or a provider's one-click POST."""
    return Client(enforce_csrf_checks=True)


READER_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
)
