"""Images in the body editor, in Chromium: the toolbar's image button uploads a PNG (made with Pillow) and
inserts another by its URL; both show in the editor under the editor page's policy, and the saved body keeps
their public URLs. A screenshot goes to test-artifacts/campaign-editor-images.png."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import close_old_connections
from PIL import Image, ImageDraw
from playwright.sync_api import expect

from campaigns.models import Campaign
from campaigns.services import images
from tests.e2e.test_dashboard_browser import (  # noqa: F401  (pytest fixtures)
    ARTIFACTS,
    chromium,
    end_live_server_connections,
)
from tests.e2e.test_layout_browser import log_in
from tests.factories import CampaignFactory, MarketerFactory

pytestmark = [pytest.mark.browser]

BANNER_WIDTH, BANNER_HEIGHT = 480, 120
LOAD_MS = 30_000


def banner_png(text, colour):
    image = Image.new("RGB", (BANNER_WIDTH, BANNER_HEIGHT), colour)
    ImageDraw.Draw(image).text((20, 50), text, fill=(255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def expect_banner_loaded(image):
    """Loaded, not broken: complete, and as wide as the banner (a broken image is complete too, 0 wide)."""
    expect(image).to_have_js_property("complete", True, timeout=LOAD_MS)
    expect(image).to_have_js_property("naturalWidth", BANNER_WIDTH, timeout=LOAD_MS)


@pytest.fixture
def draft(chromium, settings, tmp_path, live_server):
    close_old_connections()
    settings.MEDIA_ROOT = tmp_path
    settings.SITE_URL = live_server.url
    owner = MarketerFactory(username="image-maker")
    return CampaignFactory(owner=owner, name="Summer sale", body_html="<p>Hello {{ name }}, our summer sale:</p>")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_image_is_uploaded_and_another_inserted_by_url_in_the_editor(live_server, chromium, draft, tmp_path):
    origin, owner = live_server.url, draft.owner
    linked = images.store_image(owner=owner, upload=SimpleUploadedFile("x.png", banner_png("By URL", (38, 75, 93))))
    linked_url = f"{origin}/media/images/{owner.pk}/{linked.filename}"
    upload_file = tmp_path / "banner.png"
    upload_file.write_bytes(banner_png("Uploaded from my computer", (200, 80, 20)))

    page = chromium.new_page(viewport={"width": 1366, "height": 900})
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    log_in(page, origin, owner)
    page.goto(f"{origin}/admin/campaigns/campaign/{draft.pk}/change/")
    editable = page.locator(".ck-editor__editable").first
    editable.wait_for()
    editable.click()
    page.keyboard.press("End")

    # Upload: the image button's file chooser.
    with page.expect_file_chooser() as chooser:
        page.locator(".ck-editor__top [data-cke-tooltip-text='Upload image from computer']").click()
    chooser.value.set_files(str(upload_file))
    uploaded = editable.locator(f"img[src^='{origin}/media/images/{owner.pk}/']").first
    uploaded.wait_for()
    expect_banner_loaded(uploaded)

    # By URL: the image button's dropdown, with the caret back in the text (while an image is selected, the
    # button would replace it).
    editable.locator("p", has_text="summer sale").click()
    page.keyboard.press("End")
    page.locator(".ck-editor").first.evaluate("(editor) => editor.scrollIntoView()")
    page.locator(".ck-editor__top .ck-splitbutton__arrow[data-cke-tooltip-text='Insert image']").click()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "campaign-editor-image-menu.png"))
    page.get_by_role("button", name="Insert via URL").click()
    page.locator(".ck-image-insert-url input.ck-input-text").fill(linked_url)
    page.get_by_role("button", name="Insert").last.click()
    by_url = editable.locator(f"img[src='{linked_url}']")
    by_url.wait_for()
    expect_banner_loaded(by_url)

    page.locator(".ck-editor").first.evaluate("(editor) => editor.scrollIntoView()")
    page.screenshot(path=str(ARTIFACTS / "campaign-editor-images.png"))

    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")
    body = Campaign.objects.get(pk=draft.pk).body_html
    assert f'src="{linked_url}"' in body
    assert body.count(f'src="{origin}/media/images/{owner.pk}/') == 2
    assert not violations
