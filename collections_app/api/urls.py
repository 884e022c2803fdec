from rest_framework.routers import DefaultRouter

from collections_app.api import views

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("customers", views.CustomerViewSet)
router.register("invoices", views.InvoiceViewSet)
router.register("payment-requests", views.PaymentRequestViewSet)
router.register("payments", views.PaymentViewSet)
router.register("refunds", views.RefundViewSet)
router.register("instalment-plans", views.InstallmentPlanViewSet)
router.register("mandates", views.MandateViewSet)
router.register("events", views.EventViewSet)

urlpatterns = router.urls
