from rest_framework.routers import DefaultRouter

from reconciliation.api import views

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("bank-statements", views.BankStatementViewSet)
router.register("bank-transactions", views.BankTransactionViewSet)

urlpatterns = router.urls
