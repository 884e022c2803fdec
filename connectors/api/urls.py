from rest_framework.routers import DefaultRouter

from connectors.api import views

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("invoice-imports", views.InvoiceImportViewSet)

urlpatterns = router.urls
