from django.urls import path

from tracking import views

app_name = "tracking"

urlpatterns = [
    path("o/<str:token>.gif", views.open_pixel, name="open"),
    path("c/<str:token>/", views.click, name="click"),
    path("u/<str:token>/", views.unsubscribe, name="unsubscribe"),
    # An SMTP account's tracking domain: the check's URL on it, and the TLS proxy's question whether
    # it may get a certificate for a name (sending.tracking_domains, docs/operations.md).
    path("domain-check/<str:token>/", views.tracking_domain_check, name="domain_check"),
    path("domain-allowed", views.tracking_domain_allowed, name="domain_allowed"),
]
