"""Public subscription forms: the hosted page, the embeddable snippet, the confirmation email.

The writes (a submission, a confirmation) are in contacts.services.subscriptions.
"""
