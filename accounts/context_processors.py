from django.conf import settings


def signup(request):
    return {"signup_enabled": settings.SIGNUP_ENABLED}
