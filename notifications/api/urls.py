from rest_framework.routers import DefaultRouter

from notifications.api import views

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("webhook-endpoints", views.WebhookEndpointViewSet)
router.register("deliveries", views.DeliveryViewSet)
router.register("notification-rules", views.NotificationRuleViewSet)
router.register("notification-templates", views.NotificationTemplateViewSet)

urlpatterns = router.urls
