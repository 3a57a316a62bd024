from typing import Any

from django.core.management.base import BaseCommand, CommandError

from sending import crypto, services


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret (SMTP and bounce mailbox passwords, DKIM private keys, ESP webhook "
        "secrets) with the newest key (the first of FIELD_ENCRYPTION_KEYS). "
        "Put the new key first, keep the old ones after it, run this, then drop the old keys."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            count = services.rotate_encryption_keys()
        except crypto.DecryptionError as exc:
            raise CommandError(f"{exc} Nothing was changed.") from exc
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {count} secret(s) with the newest key."))
