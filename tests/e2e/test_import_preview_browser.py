"""A marketer uploads a contact file in Chromium and checks its preview before confirming: the attribute
columns with their accented values as they will be saved, a later row of the same address merged into its
first row, pages of rows, and a file with nothing to import whose Confirm button is disabled. Served under
the strict Content-Security-Policy (the test fails on a violation); the table scrolls inside its panel, so
the page never overflows at 1366 px. Screenshots go to test-artifacts/.
"""

import pytest
from django.db import close_old_connections

from config.celery import app
from contacts.models import Contact, ContactList, ImportJob
from tests.e2e.test_dashboard_browser import (  # noqa: F401  (pytest fixtures)
    ARTIFACTS,
    chromium,
    end_live_server_connections,
)
from tests.e2e.test_layout_browser import log_in
from tests.factories import MarketerFactory

pytestmark = [pytest.mark.browser]


@pytest.fixture
def eager_tasks():
    """The preview task runs in the live server's request, as a worker would run it after the upload."""
    before = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = before


@pytest.fixture
def importer(chromium, settings, tmp_path):
    close_old_connections()
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.IMPORT_PREVIEW_ROWS = 150
    owner = MarketerFactory(username="importer")
    ContactList.objects.create(owner=owner, name="Newsletter")
    return owner


def people_csv(tmp_path):
    rows = ["Email,Name,City,Company,Plan"]
    rows += [f"reader{n}@example.com,Reader {n},Pune,Acme,basic" for n in range(2, 160)]
    rows[1] = "zoe@example.de,Zoë Müller,Köln,Müller GmbH,"  # row 2
    rows[2] = "li@example.cn,李雷,北京,,"  # row 3
    rows.append("ZOE@example.de,,Düsseldorf,,gold")  # row 160: merged into row 2
    path = tmp_path / "people.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def upload(page, origin, path):
    page.goto(f"{origin}/admin/contacts/importjob/add/")
    page.set_input_files("#id_file", str(path))
    page.select_option("#id_contact_list", label="Newsletter")
    page.click("input[type=submit]")
    page.wait_for_selector("#preview-rows, #nothing-to-import")


def page_overflows(page):
    return page.evaluate("document.documentElement.scrollWidth > document.documentElement.clientWidth")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_preview_shows_attributes_as_saved_and_pages(live_server, chromium, importer, eager_tasks, tmp_path):
    origin = live_server.url
    page = chromium.new_page(viewport={"width": 1366, "height": 900})
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    log_in(page, origin, importer)

    upload(page, origin, people_csv(tmp_path))
    headers = page.locator("#preview-rows thead th").all_text_contents()
    assert headers == ["Row", "Address", "Name", "City", "Company", "Plan", "Becomes", "Why"]
    zoe = page.locator('#preview-rows tr[data-row="2"] td').all_text_contents()
    # Row 160 merges into row 2: the city and plan it brings are what will be saved.
    assert zoe[:7] == ["2", "zoe@example.de", "Zoë Müller", "Düsseldorf", "Müller GmbH", "gold", "created"]
    assert "then row 160 with the same address" in zoe[7]
    assert page.locator('#preview-rows tr[data-row="3"] td').all_text_contents()[2:4] == ["李雷", "北京"]
    assert page.locator("#preview-rows-heading").inner_text().startswith("Rows 1–100 of 150 listed")
    assert not page_overflows(page)
    page.screenshot(path=str(ARTIFACTS / "import-preview-1366.png"))

    page.click("a[rel=next] >> nth=0")
    page.wait_for_selector('#preview-rows tr[data-row="151"]')
    assert page.locator("#preview-rows tbody tr").count() == 50

    page.set_viewport_size({"width": 1920, "height": 1000})
    page.screenshot(path=str(ARTIFACTS / "import-preview-page2-1920.png"))

    page.click("input[name=confirm]")
    page.wait_for_selector("text=Imported people.csv")
    close_old_connections()
    zoe_contact = Contact.objects.get(owner=importer, email="zoe@example.de")
    assert (zoe_contact.name, zoe_contact.attributes) == (
        "Zoë Müller",
        {"City": "Düsseldorf", "Company": "Müller GmbH", "Plan": "gold"},
    )
    assert violations == []


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_header_only_file_has_nothing_to_import(live_server, chromium, importer, eager_tasks, tmp_path):
    origin = live_server.url
    page = chromium.new_page(viewport={"width": 1366, "height": 800})
    log_in(page, origin, importer)
    path = tmp_path / "empty.csv"
    path.write_text("Email,Name,City\n")

    upload(page, origin, path)
    assert "Nothing to import" in page.locator("#nothing-to-import").inner_text()
    assert page.locator("input[name=confirm]").is_disabled()
    page.screenshot(path=str(ARTIFACTS / "import-nothing-1366.png"), full_page=True)
    page.click("input[name=cancel]")
    page.wait_for_selector("text=Import cancelled")
    close_old_connections()
    assert ImportJob.objects.get().status == ImportJob.Status.CANCELLED


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_png_named_csv_is_refused_on_the_form(live_server, chromium, importer, tmp_path):
    from PIL import Image

    origin = live_server.url
    page = chromium.new_page(viewport={"width": 1366, "height": 800})
    log_in(page, origin, importer)
    path = tmp_path / "contacts.csv"
    Image.new("RGB", (8, 8), (10, 120, 200)).save(path, format="PNG")

    page.goto(f"{origin}/admin/contacts/importjob/add/")
    page.set_input_files("#id_file", str(path))
    page.select_option("#id_contact_list", label="Newsletter")
    page.click("input[type=submit]")
    page.wait_for_selector(".errorlist")
    assert "This is not a CSV text file (it looks like a PNG image)" in page.locator(".errorlist").first.inner_text()
    page.screenshot(path=str(ARTIFACTS / "import-png-refused-1366.png"), full_page=True)
