"""Shared by the import tests."""

from contacts.models import ImportJob


def read_uploads():
    """Run the preview task of every uploaded job, as a worker does once the upload commits (inside a test's
    transaction the upload's on_commit never fires, so nothing reaches the broker)."""
    from contacts.tasks import preview_import

    for job_id in (
        ImportJob.objects.filter(status=ImportJob.Status.UPLOADED).order_by("pk").values_list("pk", flat=True)
    ):
        preview_import(job_id)
