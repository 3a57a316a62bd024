"""manage.py import_contacts --owner USERNAME --list NAME FILE: the admin's import, from a shell."""

import csv
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from contacts.imports import service
from contacts.imports.reader import ENCODING_CHOICES, FileRefused
from contacts.models import ContactList

LABELS = {
    service.CREATED: "created (new contacts)",
    service.UPDATED: "updated (already your contacts, merged)",
    service.MERGED: "merged (repeated in the file)",
    service.SUPPRESSED: "kept out (unsubscribed, bounced or complained)",
    service.REJECTED: "rejected",
}


class ProgressBar:
    def __init__(self, total, stream, width=40):
        self.total, self.stream, self.width = total, stream, width
        self.started = time.monotonic()

    def __call__(self, done):
        fraction = done / self.total if self.total else 1
        filled = int(self.width * fraction)
        rate = done / max(time.monotonic() - self.started, 1e-6)
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} rows {fraction:4.0%} "
            f"({rate:,.0f} rows/s)"
        )
        self.stream.flush()

    def finish(self):
        self.stream.write("\n")
        self.stream.flush()


class Command(BaseCommand):
    help = "Import contacts from a CSV or XLSX file into one of the owner's lists (created if missing)."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--owner", required=True, help="username of the marketer who owns the contacts")
        parser.add_argument("--list", required=True, dest="list_name", help="list name (created if missing)")
        parser.add_argument(
            "--encoding",
            default="",
            choices=[c for c, _ in ENCODING_CHOICES if c],
            help="CSV encoding (default: detected)",
        )
        parser.add_argument("--dry-run", action="store_true", help="show what would happen, write nothing")
        parser.add_argument("--report", help="write the rejected rows (row, address, reason) to this CSV file")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, file, owner, list_name, encoding, dry_run, report, no_progress, **options):
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        # No IMPORT_MAX_UPLOAD_BYTES here: it keeps uploads off the web server's disk and workers; a
        # file already on this machine is read as a stream, a chunk at a time, and a large list
        # split to fit the limit would only be harder to import once.
        user = get_user_model().objects.filter(username=owner).first()
        if user is None:
            raise CommandError(f"No user named {owner!r}.")
        contact_list = ContactList.objects.filter(owner=user, name=list_name).first()
        try:
            total = service.count_file_rows(path=path, encoding=encoding)
            if contact_list is None and not dry_run:
                contact_list = ContactList.objects.create(owner=user, name=list_name)
                self.stderr.write(f"Created the list {list_name!r}.")
            bar = None if no_progress else ProgressBar(total, self.stderr._out)
            started = time.monotonic()
            result = service.import_file(
                owner=user,
                path=path,
                encoding=encoding,
                contact_list=contact_list,
                dry_run=dry_run,
                progress=bar,
                # The report file is the operator's own: every rejected row goes into it.
                keep_rejected=None if report else service.REJECTED_SAMPLE,
            )
            elapsed = time.monotonic() - started
            if bar:
                bar.finish()
        except FileRefused as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"{path.name}: {result.file_description}; {result.processed_rows} row(s) in {elapsed:.2f}s"
            + (" (dry run: nothing written)" if dry_run else f" into list {list_name!r}")
        )
        for outcome in service.OUTCOMES:
            self.stdout.write(f"  {result.counts[outcome]:>8}  {LABELS[outcome]}")
        self.stdout.write(f"  {result.blank_rows:>8}  blank rows ignored")
        if report:
            with open(report, "w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(["row", "address", "reason"])
                writer.writerows([r["row"], r["address"], r["reason"]] for r in result.rejected)
            self.stdout.write(f"Rejected rows written to {report}.")
        elif result.rejected:
            shown = result.rejected[:20]
            self.stdout.write(
                "Rejected rows:"
                + (
                    ""
                    if len(shown) == result.counts[service.REJECTED]
                    else f" (first {len(shown)} of {result.counts[service.REJECTED]}; --report FILE for all)"
                )
            )
            for r in shown:
                self.stdout.write(f"  row {r['row']}: {r['address']!r}: {r['reason']}")
