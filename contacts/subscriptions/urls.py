from django.urls import path

from contacts.subscriptions import views

app_name = "subscriptions"

urlpatterns = [
    path("confirm/<str:token>/", views.confirm_page, name="confirm"),
    path("<str:token>/", views.subscribe_page, name="page"),
]
