import zoneinfo

from django.utils import timezone


class UserTimezoneMiddleware:
    """Show and read every date in the logged-in user's own time zone."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        tz = None
        if user is not None and user.is_authenticated and user.timezone:
            try:
                tz = zoneinfo.ZoneInfo(user.timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                tz = None
        if tz is not None:
            timezone.activate(tz)
        else:
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


class ContentSecurityPolicyMiddleware:
    """Every page may load scripts, styles, frames and data from our own origin only.

    `settings.CONTENT_SECURITY_POLICY` is the header; a view that needs more (the
    campaign preview shows an email's remote images in its sandboxed iframe, which
    inherits this policy) sets its own header, which is kept.
    """

    def __init__(self, get_response):
        from django.conf import settings

        self.policy = settings.CONTENT_SECURITY_POLICY
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if self.policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = self.policy
        return response
