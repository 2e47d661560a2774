from django.urls import path

from markets import views

urlpatterns = [
    path("", views.overview, name="markets-overview"),
    path("markets/<str:symbol>/", views.trade, name="trade"),
]
