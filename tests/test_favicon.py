"""The site's icon: /favicon.ico leads to it, and every page links it."""

import io

from django.templatetags.static import static
from PIL import Image


def fetch(client, url):
    response = client.get(url)
    return b"".join(response.streaming_content) if response.streaming else response.content, response


def test_favicon_ico_redirects_to_the_static_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"] == static("img/favicon.ico")
    body, icon = fetch(client, response["Location"])
    assert icon.status_code == 200
    assert Image.open(io.BytesIO(body)).format == "ICO"


def test_the_admin_and_public_pages_link_the_icon(client, db):
    for url in ("/admin/login/", "/accounts/signup/"):
        page = client.get(url).content.decode()
        assert f'<link rel="icon" href="{static("img/favicon.png")}" type="image/png"' in page, url
    body, png = fetch(client, static("img/favicon.png"))
    assert png.status_code == 200
    assert Image.open(io.BytesIO(body)).format == "PNG"


def test_the_unsubscribe_pages_link_the_icon(client, db):
    # The tracking pages have their own base: an invalid link still shows one of them.
    page = client.get("/t/u/not-a-token/").content.decode()
    assert f'href="{static("img/favicon.ico")}"' in page
