"""Images in the body editor: uploaded (checked by content, stored per owner under a random name, served
publicly with their own type) or inserted by URL; the editor pages let https images show."""

import io
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from tests.factories import CampaignFactory, EmailTemplateFactory, MarketerFactory

UPLOAD_URL = "/ckeditor5/image_upload/"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.SITE_URL = "https://mail.example.com"
    return tmp_path


def image_bytes(image_format, size=(40, 30)):
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 80, 20)).save(buffer, format=image_format)
    return buffer.getvalue()


def upload(client, name, content, content_type="image/png"):
    return client.post(UPLOAD_URL, {"upload": SimpleUploadedFile(name, content, content_type=content_type)})


def stored_files(root):
    return [p for p in Path(root).rglob("*") if p.is_file()]


def public_path(url):
    assert url.startswith("https://mail.example.com/media/images/")
    return url.removeprefix("https://mail.example.com")


def test_a_png_is_stored_under_its_owner_and_served_to_anyone_as_a_png(marketer_client, marketer, media_root):
    png = image_bytes("PNG")
    response = upload(marketer_client, "logo.png", png)

    assert response.status_code == 200
    path = public_path(response.json()["url"])
    assert path.startswith(f"/media/images/{marketer.pk}/") and path.endswith(".png") and "logo" not in path
    [stored] = stored_files(media_root)
    assert stored.parent == media_root / "images" / str(marketer.pk) and stored.read_bytes() == png

    served = Client().get(path)  # a recipient's mail client: no session
    assert served.status_code == 200
    assert served["Content-Type"] == "image/png"
    assert served["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in served["Content-Security-Policy"]
    assert b"".join(served.streaming_content) == png


@pytest.mark.parametrize(
    "image_format, extension, content_type",
    [
        ("JPEG", "jpg", "image/jpeg"),
        ("GIF", "gif", "image/gif"),
        ("WEBP", "webp", "image/webp"),
    ],
)
def test_jpeg_gif_and_webp_are_named_and_served_by_what_they_are(
    marketer_client, image_format, extension, content_type
):
    # Named .png whatever they are: the content decides.
    response = upload(marketer_client, "picture.png", image_bytes(image_format))
    path = public_path(response.json()["url"])
    assert path.endswith(f".{extension}")
    assert Client().get(path)["Content-Type"] == content_type


def test_two_uploads_of_one_file_get_different_unguessable_names(marketer_client):
    png = image_bytes("PNG")
    first, second = (public_path(upload(marketer_client, "a.png", png).json()["url"]) for _ in range(2))
    assert first != second
    assert len(first.rsplit("/", 1)[1].split(".")[0]) == 22


@pytest.mark.parametrize(
    "name, content, content_type",
    [
        ("page.png", b"<html><script>alert(document.cookie)</script></html>", "image/png"),
        ("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "image/svg+xml"),
        ("broken.png", image_bytes("PNG")[:40], "image/png"),
        ("icon.bmp", image_bytes("BMP"), "image/bmp"),
    ],
)
def test_what_is_not_a_png_jpeg_gif_or_webp_is_refused(marketer_client, media_root, name, content, content_type):
    response = upload(marketer_client, name, content, content_type)
    assert response.status_code == 400
    assert response.json()["error"]["message"]
    assert stored_files(media_root) == []


def test_an_image_over_the_size_limit_is_refused(marketer_client, media_root, settings):
    png = image_bytes("PNG")
    settings.IMAGE_UPLOAD_MAX_BYTES = len(png) - 1
    response = upload(marketer_client, "big.png", png)
    assert response.status_code == 400 and "larger than" in response.json()["error"]["message"]
    assert stored_files(media_root) == []


def test_the_default_size_limit_is_5_mb(settings):
    assert settings.IMAGE_UPLOAD_MAX_BYTES == 5 * 1024 * 1024


def test_anonymous_and_non_staff_users_cannot_upload(client, db, media_root):
    assert upload(client, "a.png", image_bytes("PNG")).status_code == 403
    client.force_login(MarketerFactory(username="not-staff", is_staff=False))
    assert upload(client, "a.png", image_bytes("PNG")).status_code == 403
    assert stored_files(media_root) == []


def test_an_upload_without_the_csrf_token_is_refused(marketer, media_root):
    client = Client(enforce_csrf_checks=True)
    client.force_login(marketer)
    assert upload(client, "a.png", image_bytes("PNG")).status_code == 403
    assert stored_files(media_root) == []

    # The editor sends the token from the cookie in the X-CSRFToken header.
    client.get("/admin/campaigns/campaign/add/")
    token = client.cookies["csrftoken"].value
    response = client.post(
        UPLOAD_URL, {"upload": SimpleUploadedFile("a.png", image_bytes("PNG"))}, headers={"X-CSRFToken": token}
    )
    assert response.status_code == 200


def test_an_unknown_image_answers_404(client, db):
    assert client.get("/media/images/1/AAAAAAAAAAAAAAAAAAAAAA.png").status_code == 404
    assert client.get("/media/images/1/..%2F..%2Fsettings.png").status_code == 404
    assert client.get("/media/images/1/notes.html").status_code == 404


def test_the_editor_pages_let_https_images_show_and_offer_the_image_button(marketer_client, marketer):
    campaign = CampaignFactory(owner=marketer)
    template = EmailTemplateFactory(owner=marketer)
    for url in (
        "/admin/campaigns/campaign/add/",
        f"/admin/campaigns/campaign/{campaign.pk}/change/",
        "/admin/campaigns/emailtemplate/add/",
        f"/admin/campaigns/emailtemplate/{template.pk}/change/",
    ):
        response = marketer_client.get(url)
        assert "img-src 'self' data: https:;" in response["Content-Security-Policy"], url
        assert "script-src" not in response["Content-Security-Policy"]  # scripts stay under default-src 'self'
        body = response.content.decode()
        assert '"insertImage"' in body and 'data-upload-url="/ckeditor5/image_upload/"' in body, url
    # Elsewhere the strict policy stays.
    listing = marketer_client.get("/admin/campaigns/campaign/")
    assert "https:" not in listing["Content-Security-Policy"]


def test_another_owners_campaign_page_still_answers_404(marketer_client, other_marketer):
    campaign = CampaignFactory(owner=other_marketer)
    assert marketer_client.get(f"/admin/campaigns/campaign/{campaign.pk}/change/").status_code == 404
