from django.urls import path

from orders import views

urlpatterns = [
    path("", views.history, name="order-history"),
    path("fills/", views.fills, name="fills"),
    path("place/<str:symbol>/", views.place, name="order-place"),
    path("<int:order_id>/cancel/", views.cancel, name="order-cancel"),
    path("cancel-all/", views.cancel_all, name="order-cancel-all"),
]
