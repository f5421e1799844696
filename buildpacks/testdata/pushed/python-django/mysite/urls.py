import django
from django.conf import settings
from django.http import HttpResponse
from django.urls import path


def hello(request):
    collected = (settings.STATIC_ROOT / "admin" / "css" / "base.css").exists()
    return HttpResponse(f"hello from django {django.get_version()}; static collected: {collected}\n", content_type="text/plain")


urlpatterns = [path("", hello)]
