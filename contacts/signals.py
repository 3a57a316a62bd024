"""What the contacts app tells the apps above it, which it does not import.

`contacts_suppressed` is sent inside the transaction that suppresses the contacts, so a receiver's
writes commit or roll back with the suppression. The campaigns app cancels their unsent emails on it
(campaigns.receivers): a suppressed contact receives nothing more.
"""

from django.dispatch import Signal

# Sent with contact_ids (every contact asked for, suppressed before or not) and now.
contacts_suppressed = Signal()
