from django.contrib.auth.backends import ModelBackend


class AccessControlledBackend(ModelBackend):
    """Only active, confirmed, approved and unexpired accounts (or superusers) log in.

    get_user() runs this check on every request too, so an account that expires
    or is deactivated is logged out at its next request.
    """

    def user_can_authenticate(self, user):
        return getattr(user, "has_access", False)
