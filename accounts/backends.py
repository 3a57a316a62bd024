from django.contrib.auth.backends import ModelBackend

from accounts.models import User

# Set on the request by AccessControlledBackend.authenticate when the password was right but the
# account may not log in: the login form shows the reason (accounts.forms.AccessAwareLoginForm).
LOGIN_DENIED_REASON = "login_denied_reason"


class AccessControlledBackend(ModelBackend):
    """Only active, confirmed, approved and unexpired accounts (or superusers) log in.

    get_user() runs this check on every request too, so an account that expires
    or is deactivated is logged out at its next request.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        """ModelBackend's, noting why a right password did not let its account in.

        Every attempt runs the password hasher exactly once (an unknown name hashes the
        password for nothing, as in ModelBackend), so a failure's time does not tell a real
        username from an unknown one. The reason goes on the request because checking the
        password again elsewhere would be that second hash.
        """
        if username is None:
            username = kwargs.get(User.USERNAME_FIELD)
        if username is None or password is None:
            return None
        try:
            user = User._default_manager.get_by_natural_key(username)
        except User.DoesNotExist:
            User().set_password(password)
            return None
        if not user.check_password(password):
            return None
        if self.user_can_authenticate(user):
            return user
        if request is not None:
            setattr(request, LOGIN_DENIED_REASON, user.access_denied_reason())
        return None

    def user_can_authenticate(self, user):
        return getattr(user, "has_access", False)
