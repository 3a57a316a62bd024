"""The body editor (CKEditor 5) of campaigns and templates.

Image uploads are switched off: django-ckeditor-5's own upload view stores every
staff user's files in one shared folder, where any marketer could reach (and,
with a known name, overwrite) another's. Images are placed by URL instead
(source editing, or an <img> pasted with the HTML). The widget still needs an
upload URL under the package's URL name, so that name points here and refuses.
"""

from django.http import JsonResponse
from django.views.decorators.http import require_POST
from django_ckeditor_5.widgets import CKEditor5Widget

EDITOR_CONFIG = "default"


def body_widget():
    return CKEditor5Widget(config_name=EDITOR_CONFIG, attrs={"class": "django_ckeditor_5"})


@require_POST
def image_upload_disabled(request):
    return JsonResponse(
        {"error": {"message": "Image uploads are switched off. Insert images by their URL (Source)."}}, status=403
    )
