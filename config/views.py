"""Site-wide views that belong to no app."""

from django.http import HttpResponseRedirect
from django.templatetags.static import static
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe


@require_safe
@cache_control(max_age=86400, public=True)
def favicon(request):
    # Browsers ask for /favicon.ico whatever the page links; the file itself is a static file
    # (hashed in production), so a temporary redirect keeps pointing at the current one.
    return HttpResponseRedirect(static("img/favicon.ico"))
