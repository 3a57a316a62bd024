"""The campaign a batch sends, with its owner and SMTP account, as this worker process last loaded them.

Every batch needs the three (the content, the footer's organization and address, the connection's
settings), and every batch of a campaign needs the same ones. Loading them through the ORM cost a
worker 2 ms a batch, the price of 40 messages' SMTP dialogue. A batch now reads one row of what
may change while a campaign sends (its status, its and its account's last save, the account's
pause, throttle and password, the owner's access and footer details) and loads the three again
only when any of it differs from what it was at the last load.

Content edits go through the admin, whose save sets `updated_at`; every other write that matters
to a batch is one of the columns compared here.
"""

import threading
from collections import OrderedDict

from django.db import connection

from accounts.models import SmtpAccount, User
from campaigns.models import Campaign

_SIZE = 64
_loaded = OrderedDict()  # campaign id -> (state, Campaign with owner and smtp_account)
_lock = threading.Lock()  # a worker has one thread; tasks run eagerly in a threaded web server do not

_CAMPAIGN_COLUMNS = ("status", "updated_at", "owner_id", "smtp_account_id")
_ACCOUNT_COLUMNS = ("updated_at", "paused_until", "pause_reason", "throttle_factor", "max_per_minute", "password")
_OWNER_COLUMNS = (
    "is_active", "is_superuser", "access_expires_at", "email_confirmed_at", "approved_at", "organization",
    "postal_address", "first_name", "last_name", "username",
)


def _state_sql():
    columns = [f"c.{c}" for c in _CAMPAIGN_COLUMNS] + [f"a.{c}" for c in _ACCOUNT_COLUMNS] + [
        f"u.{c}" for c in _OWNER_COLUMNS
    ]
    return f"""
        SELECT {', '.join(columns)} FROM {Campaign._meta.db_table} c
        JOIN {User._meta.db_table} u ON u.id = c.owner_id
        LEFT JOIN {SmtpAccount._meta.db_table} a ON a.id = c.smtp_account_id
        WHERE c.id = %s
    """


_STATE = _state_sql()


def campaign_for_batch(campaign_id):
    """The campaign with its owner and SMTP account as they are now, or None if it is gone."""
    with connection.cursor() as cursor:
        cursor.execute(_STATE, [campaign_id])
        state = cursor.fetchone()
    if state is None:
        forget(campaign_id)
        return None
    with _lock:
        loaded = _loaded.get(campaign_id)
        if loaded is not None and loaded[0] == state:
            _loaded.move_to_end(campaign_id)
            return loaded[1]
    campaign = Campaign.objects.select_related("owner", "smtp_account").filter(pk=campaign_id).first()
    if campaign is None:
        forget(campaign_id)
        return None
    with _lock:
        # The state read before the load: a change made in between makes the next batch load again.
        _loaded[campaign_id] = (state, campaign)
        _loaded.move_to_end(campaign_id)
        while len(_loaded) > _SIZE:
            _loaded.popitem(last=False)
    return campaign


def forget(campaign_id=None):
    """Drop one campaign, or all of them (tests that change rows behind the admin's back)."""
    with _lock:
        if campaign_id is None:
            _loaded.clear()
        else:
            _loaded.pop(campaign_id, None)
