from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts import services
from accounts.forms import ProfileForm, SignupForm


@require_http_methods(["GET", "POST"])
def signup(request):
    if not settings.SIGNUP_ENABLED:
        raise Http404("Sign-up is closed.")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        services.register(
            username=data["username"],
            email=data["email"],
            password=data["password1"],
            organization=data["organization"],
            timezone_name=data["timezone"],
        )
        return render(request, "accounts/signup_done.html", {"email": data["email"]})
    return render(request, "accounts/signup.html", {"form": form})


def confirm(request, token):
    try:
        user = services.confirm_email(token=token)
    except services.ConfirmationError as exc:
        return render(request, "accounts/confirm.html", {"error": str(exc)}, status=400)
    return render(request, "accounts/confirm.html", {"confirmed_user": user})


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
