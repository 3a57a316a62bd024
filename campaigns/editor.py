"""The body editor (CKEditor 5) of campaigns and templates, and the images placed in it.

Images come in two ways: uploaded (the editor's "Upload image", posted to `image_upload` below under the URL
name django-ckeditor-5's widget reverses; the package's own view is not routed, as it keeps every user's
files in one shared folder under their own names), or inserted by URL. Uploaded images are served to anyone
by `public_image`, since recipients' mail clients load them.
"""

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, JsonResponse
from django.urls import reverse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_POST, require_safe
from django_ckeditor_5.widgets import CKEditor5Widget

from campaigns.services import images

EDITOR_CONFIG = "default"


def body_widget():
    return CKEditor5Widget(config_name=EDITOR_CONFIG, attrs={"class": "django_ckeditor_5"})


class EditorPageMixin:
    """For the admin pages with the editor: images from any https URL show in it (and uploaded ones, served
    from SITE_URL), as they will in the recipients' mail clients."""

    def changeform_view(self, request, *args, **kwargs):
        response = super().changeform_view(request, *args, **kwargs)
        response["Content-Security-Policy"] = settings.CONTENT_SECURITY_POLICY_EDITOR
        return response


def _refusal(message, status):
    # The answer CKEditor's simple upload adapter shows to the user.
    return JsonResponse({"error": {"message": message}}, status=status)


@require_POST
def image_upload(request):
    """CSRF is checked by the middleware (the editor sends the X-CSRFToken header); answers JSON, never a login
    page, as the editor reads the answer."""
    user = request.user
    if not (user.is_authenticated and user.is_active and user.is_staff):
        return _refusal("Log in to upload images.", status=403)
    upload = request.FILES.get("upload")
    if upload is None:
        return _refusal("No image was sent.", status=400)
    try:
        stored = images.store_image(owner=user, upload=upload)
    except images.ImageRefused as exc:
        return _refusal(str(exc), status=400)
    path = reverse("public_image", kwargs={"owner_id": stored.owner_id, "filename": stored.filename})
    return JsonResponse({"url": f"{settings.SITE_URL}{path}"})


@require_safe
@cache_control(public=True, max_age=365 * 24 * 3600, immutable=True)
def public_image(request, *, owner_id, filename):
    path = images.image_path(owner_id=owner_id, filename=filename)
    if not default_storage.exists(path):
        raise Http404("No such image.")
    response = FileResponse(default_storage.open(path), content_type=images.content_type(filename=filename))
    # Served as the image it was checked to be, never sniffed into anything else, and never a document.
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response
