"""The engine's health for operators: each market's last settled batch and the commands waiting for it."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from accounts.admin import ReadOnlyAdmin
from matching.models import EngineState
from matching.selectors import engine_health


@admin.register(EngineState)
class EngineHealthAdmin(ReadOnlyAdmin):
    """Listed as "Engine states"; its page is the health view rather than a list of checkpoint rows."""

    def changelist_view(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        if not self.has_view_permission(request):
            return super().changelist_view(request, extra_context)  # Django's own refusal
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Engine health",
            "markets": engine_health(),
            "now": timezone.now(),
        }
        return TemplateResponse(request, "admin/matching/engine_health.html", context)
