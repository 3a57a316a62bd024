from axes.helpers import get_cool_off, get_failure_limit
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth import views as auth_views
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.timesince import timeuntil
from django.views.decorators.http import require_http_methods

from accounts import rate_limits, selectors, services
from accounts.client_address import rate_limit_key
from accounts.forms import ProfileForm, SignupForm
from accounts.rate_limits import RateLimited


@require_http_methods(["GET", "POST"])
def signup(request):
    if not settings.SIGNUP_ENABLED:
        raise Http404("Sign-up is closed.")
    form = SignupForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.sign_up(
                username=data["username"],
                email=data["email"],
                password=data["password1"],
                organization=data["organization"],
                timezone_name=data["timezone"],
                client_key=rate_limit_key(request),
                now=timezone.now(),
            )
        except RateLimited as exc:
            form.add_error(None, str(exc))
            status = 429
        else:
            return render(request, "accounts/signup_done.html", {"email": data["email"]})
    return render(request, "accounts/signup.html", {"form": form}, status=status)


class PasswordResetView(auth_views.PasswordResetView):
    """Django's, limited per client and per address typed. Its reply never says whether an
    account has the address: Django mails only existing accounts and shows the same page."""

    def form_valid(self, form):
        try:
            rate_limits.count_password_reset(client_key=rate_limit_key(self.request), email=form.cleaned_data["email"])
        except RateLimited as exc:
            form.add_error("email", str(exc))
            response = self.form_invalid(form)
            response.status_code = 429
            return response
        return super().form_valid(form)


# A link scanner fetching the link (GET, HEAD) must not confirm the address: the page asks, its POST confirms.
@require_http_methods(["GET", "HEAD", "POST"])
def confirm(request, token):
    try:
        if request.method == "POST":
            user = services.confirm_email(token=token)
        else:
            user = services.confirmation_user(token=token)
    except services.ConfirmationError as exc:
        return render(request, "accounts/confirm.html", {"error": str(exc)}, status=400)
    if user.email_confirmed_at is None:
        return render(request, "accounts/confirm.html", {"user_to_confirm": user})
    # With no superuser to mail, nobody learns of the sign-up unless its owner says so: tell them.
    administrator_told = user.approved_at is not None or bool(selectors.approver_emails())
    return render(request, "accounts/confirm.html", {"confirmed_user": user, "administrator_told": administrator_told})


@staff_member_required
@require_http_methods(["GET", "POST"])
def profile(request):
    form = ProfileForm(request.POST or None, instance=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Your profile is saved.")
        return redirect("accounts:profile")
    context = {**admin.site.each_context(request), "form": form, "title": "My profile"}
    return render(request, "accounts/profile.html", context)


def login_locked_out(request, original_response, credentials):
    """What a locked-out login gets (django-axes' AXES_LOCKOUT_CALLABLE): how long to wait.

    The attempt that got here was itself a failure and restarted the cool-off, so the wait is the
    whole cool-off from now."""
    cool_off = get_cool_off(request)
    now = timezone.now()
    context = {"failure_limit": get_failure_limit(request, credentials), "wait": timeuntil(now + cool_off, now)}
    response = render(request, "accounts/locked_out.html", context, status=429)
    response["Retry-After"] = str(int(cool_off.total_seconds()))
    return response
