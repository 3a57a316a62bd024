from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from accounts import views as account_views
from accounts.owned_admin import FormFieldAutocompleteJsonView
from bounces import views as bounces_views
from campaigns import editor
from campaigns import views as campaign_views
from config import views as site_views
from reporting import views as reporting_views

urlpatterns = [
    path("favicon.ico", site_views.favicon, name="favicon"),
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    # Password reset with Django's own views, linked from the admin login page.
    path("admin/password_reset/", account_views.PasswordResetView.as_view(), name="admin_password_reset"),
    path("admin/password_reset/done/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path("reset/<uidb64>/<token>/", auth_views.PasswordResetConfirmView.as_view(), name="password_reset_confirm"),
    path("reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("accounts/", include("accounts.urls")),
    # The editor's image upload (our view, under the URL name django-ckeditor-5's widget posts to), and the
    # uploaded images, public for recipients' mail clients; a name is 22 random URL-safe characters.
    path("ckeditor5/image_upload/", editor.image_upload, name="ck_editor_5_upload_file"),
    re_path(
        r"^media/images/(?P<owner_id>[0-9]+)/(?P<filename>[A-Za-z0-9_-]{22}\.(?:png|jpg|gif|webp))$",
        editor.public_image,
        name="public_image",
    ),
    path("t/", include("tracking.urls")),
    path("s/", include("contacts.subscriptions.urls")),
    # An account's ESP webhook (bounces, complaints, deliveries); the token names the account.
    re_path(r"^esp/(?P<token>[A-Za-z0-9_-]{16,64})/$", bounces_views.esp_webhook, name="esp_webhook"),
    # The dashboard's and analytics pages' data (staff only, owner-scoped), ahead of the admin's catch-all.
    path("admin/dashboard/data/", admin.site.admin_view(reporting_views.dashboard_data), name="dashboard_data"),
    path(
        "admin/campaigns/campaign/<int:campaign_id>/analytics/",
        admin.site.admin_view(reporting_views.campaign_analytics),
        name="campaign_analytics",
    ),
    path(
        "admin/campaigns/campaign/<int:campaign_id>/analytics/data/",
        admin.site.admin_view(reporting_views.campaign_analytics_data),
        name="campaign_analytics_data",
    ),
    # A campaign's link check (its page, and its fragment or JSON for the review page), owner-scoped.
    path(
        "admin/campaigns/campaign/<int:campaign_id>/links/",
        admin.site.admin_view(campaign_views.link_checks_page),
        name="campaign_link_checks",
    ),
    path(
        "admin/campaigns/campaign/<int:campaign_id>/links/status/",
        admin.site.admin_view(campaign_views.link_checks_status),
        name="campaign_link_checks_status",
    ),
    # The admin's autocomplete, refusing sources no form has (see FormFieldAutocompleteJsonView).
    path(
        "admin/autocomplete/",
        admin.site.admin_view(FormFieldAutocompleteJsonView.as_view(admin_site=admin.site)),
    ),
    path("admin/", admin.site.urls),
]
