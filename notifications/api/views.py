"""API of the notifications app. Auth, permissions, pagination and errors come from the
REST_FRAMEWORK settings; a key bound to a creditor sees that creditor's objects only."""
from __future__ import annotations

import datetime as dt

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from notifications import services
from notifications.api import serializers as s
from notifications.models import Delivery, NotificationRule, NotificationTemplate, WebhookEndpoint


def _key_creditor(request) -> int | None:
    return getattr(request.auth, "creditor_id", None)


class CreditorScoped:
    def get_queryset(self):
        qs = super().get_queryset()
        creditor_id = _key_creditor(self.request)
        return qs.filter(creditor_id=creditor_id) if creditor_id else qs

    def scoped_creditor(self, requested: int | None) -> int | None:
        return _key_creditor(self.request) or requested


class WebhookEndpointViewSet(CreditorScoped, viewsets.ModelViewSet):
    queryset = WebhookEndpoint.objects.order_by("id")
    serializer_class = s.WebhookEndpointSerializer
    filterset_fields = ["status"]

    @extend_schema(responses={201: s.WebhookEndpointWithSecretSerializer},
                   description="Creates an endpoint; the answer carries its `whsec_` signing secret, shown only once.")
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        endpoint = services.endpoint_create(
            name=data["name"], url=data["url"], description=data.get("description", ""),
            creditor_id=self.scoped_creditor(data.get("creditor_id")),
            disable_after_failures=data.get("disable_after_failures", 100))
        return Response(s.WebhookEndpointWithSecretSerializer(endpoint).data, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer):
        fields = dict(serializer.validated_data)
        if "creditor_id" in fields:
            fields["creditor_id"] = self.scoped_creditor(fields["creditor_id"])
        serializer.instance = services.endpoint_update(endpoint=serializer.instance, **fields)

    @extend_schema(request=s.RotateSerializer, responses=s.WebhookEndpointWithSecretSerializer,
                   description="New signing secret (shown only now); the previous one keeps signing for "
                               "`overlap_hours`, both signatures are sent meanwhile.")
    @action(detail=True, methods=["post"])
    def rotate(self, request, pk=None):
        params = s.RotateSerializer(data=request.data or {})
        params.is_valid(raise_exception=True)
        endpoint = services.endpoint_rotate_secret(
            endpoint=self.get_object(), overlap=dt.timedelta(hours=params.validated_data["overlap_hours"]))
        return Response(s.WebhookEndpointWithSecretSerializer(endpoint).data)

    @extend_schema(request=None, responses=s.DeliverySerializer,
                   description="Sends a signed `webhook.ping` now and returns the delivery with the answer.")
    @action(detail=True, methods=["post"])
    def ping(self, request, pk=None):
        return Response(s.DeliverySerializer(services.endpoint_ping(endpoint=self.get_object())).data)

    # Sent at once, committing its claim before the call: not run inside the Idempotency-Key's
    # transaction (collections_app.api.idempotency).
    ping.idempotency_atomic = False

    @extend_schema(request=None, responses=s.WebhookEndpointSerializer)
    @action(detail=True, methods=["post"])
    def enable(self, request, pk=None):
        return Response(s.WebhookEndpointSerializer(services.endpoint_enable(endpoint=self.get_object())).data)

    @extend_schema(request=None, responses=s.WebhookEndpointSerializer)
    @action(detail=True, methods=["post"])
    def disable(self, request, pk=None):
        endpoint = services.endpoint_disable(endpoint=self.get_object(), reason="disabled through the API")
        return Response(s.WebhookEndpointSerializer(endpoint).data)


class DeliveryViewSet(CreditorScoped, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Delivery.objects.select_related("event").prefetch_related("attempt_log").order_by("-id")
    serializer_class = s.DeliverySerializer
    filterset_fields = ["status", "channel", "rule", "event", "webhook_endpoint", "is_test"]

    @extend_schema(request=None, responses=s.DeliverySerializer,
                   description="Sends the delivery again (same content; for webhooks the same webhook-id).")
    @action(detail=True, methods=["post"])
    def replay(self, request, pk=None):
        return Response(s.DeliverySerializer(services.delivery_replay(delivery=self.get_object())).data)


class NotificationRuleViewSet(CreditorScoped, viewsets.ModelViewSet):
    queryset = NotificationRule.objects.select_related("staff_group").order_by("id")
    serializer_class = s.NotificationRuleSerializer
    filterset_fields = ["event_type", "channel", "is_active"]

    def perform_create(self, serializer):
        serializer.save(creditor_id=self.scoped_creditor(serializer.validated_data.get("creditor_id")))

    def perform_update(self, serializer):
        if _key_creditor(self.request):
            serializer.save(creditor_id=_key_creditor(self.request))
        else:
            serializer.save()


class NotificationTemplateViewSet(viewsets.ModelViewSet):
    queryset = NotificationTemplate.objects.order_by("id")
    serializer_class = s.NotificationTemplateSerializer
    filterset_fields = ["key", "channel", "locale"]
