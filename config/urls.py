from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path
from django.views.generic import TemplateView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from collections_app.gateways import sandbox_views
from collections_app.paypages import urls as paypage_urls
from collections_app.paypages import views as paypage_views
from config import views

api_v1 = [
    path("", include("collections_app.api.urls")),
    path("", include("notifications.api.urls")),  # issue 7
    path("", include("reconciliation.api.urls")),  # issue 4
    path("", include("connectors.api.urls")),  # issue 8
]

urlpatterns = [
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    # issue 3: hosted pay pages, customer portal, the sandbox gateway's own pages
    path("pay/<str:token>/", include((paypage_urls.pay_urls, "paypages"))),
    path("portal/<str:token>/", paypage_views.portal, name="portal"),
    path("sandbox-gateway/", include(sandbox_views.urlpatterns)),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]

if settings.DEBUG:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
