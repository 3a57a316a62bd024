"""The web's cached map of verified tracking domains follows every change of an account, however it
is made (the admin's form, a check, a deletion, an owner's deletion that cascades)."""

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from sending import tracking_domains
from sending.models import SmtpAccount


@receiver(post_save, sender=SmtpAccount, dispatch_uid="sending.tracking_domains.saved")
@receiver(post_delete, sender=SmtpAccount, dispatch_uid="sending.tracking_domains.deleted")
def forget_tracking_domains(**kwargs: Any) -> None:
    tracking_domains.forget_cached_domains()
