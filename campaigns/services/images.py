"""Images uploaded from the body editor, stored for recipients' mail clients to fetch.

Each is checked by its content with Pillow (PNG, JPEG, GIF or WebP; no SVG, which can carry script), and
stored under MEDIA_ROOT/images/<owner id>/<random>.<extension of the detected format>: the uploaded name
is never used, and a name cannot be guessed, so one owner's images cannot be listed, reached by another's
name or overwritten. They are public on purpose: every recipient's mail client loads them.
"""

import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from PIL import Image, UnidentifiedImageError

from accounts.models import User

IMAGE_FOLDER = "images"
# Pillow's format name -> the extension stored and the Content-Type served.
ALLOWED_FORMATS = {
    "PNG": ("png", "image/png"),
    "JPEG": ("jpg", "image/jpeg"),
    "GIF": ("gif", "image/gif"),
    "WEBP": ("webp", "image/webp"),
}
CONTENT_TYPES = dict(ALLOWED_FORMATS.values())
# Pillow's guard against decompression bombs; an email image needs far fewer pixels.
MAX_PIXELS = 40_000_000


class ImageRefused(Exception):
    pass


@dataclass(frozen=True)
class StoredImage:
    owner_id: int
    filename: str


def store_image(*, owner: User, upload: "UploadedFile[bytes]") -> StoredImage:
    extension = checked_extension(upload=upload)
    filename = f"{secrets.token_urlsafe(16)}.{extension}"
    upload.seek(0)
    default_storage.save(image_path(owner_id=owner.pk, filename=filename), upload)
    return StoredImage(owner_id=owner.pk, filename=filename)


def checked_extension(*, upload: "UploadedFile[bytes]") -> str:
    """The extension for what the upload's bytes are, whatever its name and declared type say."""
    limit = settings.IMAGE_UPLOAD_MAX_BYTES
    if upload.size is None or upload.size > limit:  # an upload always has a size
        raise ImageRefused(f"The image is larger than {limit // (1024 * 1024)} MB.")
    try:
        with Image.open(upload) as image:
            image_format = image.format
            if image.width * image.height > MAX_PIXELS:
                raise ImageRefused("The image has too many pixels.")
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise ImageRefused("This file is not an image (PNG, JPEG, GIF or WebP).") from None
    if image_format not in ALLOWED_FORMATS:
        raise ImageRefused(f"{image_format} images are not accepted: use PNG, JPEG, GIF or WebP.")
    return ALLOWED_FORMATS[image_format][0]


def image_path(*, owner_id: int, filename: str) -> str:
    return f"{IMAGE_FOLDER}/{owner_id}/{filename}"


def content_type(*, filename: str) -> str:
    return CONTENT_TYPES[filename.rsplit(".", 1)[-1]]
