"""What a browser posts with an SMTP account's form for its bounce mailbox inline, left empty."""

# The inline's formset (prefix: the relation's name) with no form filled in.
NO_BOUNCE_MAILBOX = {
    "bounce_mailbox-TOTAL_FORMS": "0",
    "bounce_mailbox-INITIAL_FORMS": "0",
    "bounce_mailbox-MIN_NUM_FORMS": "0",
    "bounce_mailbox-MAX_NUM_FORMS": "1",
}
