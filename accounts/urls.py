from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views

urlpatterns = [
    path("signup/", views.signup, name="signup"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("login/verify/", views.login_verify, name="login-verify"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/", views.account, name="account"),
    path("account/api-keys/", views.api_key_create, name="api-key-create"),
    path("account/api-keys/<int:key_id>/revoke/", views.api_key_revoke, name="api-key-revoke"),
    path("account/withdraw/", views.withdraw, name="withdraw"),
    path("account/2fa/", views.two_factor, name="two-factor"),
    path("account/2fa/setup/", views.two_factor_setup, name="two-factor-setup"),
    path("account/2fa/confirm/", views.two_factor_confirm, name="two-factor-confirm"),
    path("account/2fa/recovery-codes/", views.two_factor_recovery_regenerate, name="two-factor-recovery-codes"),
    path("account/2fa/disable/", views.two_factor_disable, name="two-factor-disable"),
]
