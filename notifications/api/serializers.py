from __future__ import annotations

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from notifications.models import (
    Delivery,
    DeliveryAttempt,
    NotificationRule,
    NotificationTemplate,
    WebhookEndpoint,
)
from notifications.rules import rule_validate
from notifications.templating import TemplateRefused, template_check


class WebhookEndpointSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookEndpoint
        fields = ["id", "name", "url", "description", "creditor_id", "status", "disabled_reason", "disabled_at",
                  "disable_after_failures", "consecutive_failures", "previous_secret_expires_at", "created_at",
                  "updated_at"]
        read_only_fields = ["status", "disabled_reason", "disabled_at", "consecutive_failures",
                            "previous_secret_expires_at", "created_at", "updated_at"]


class WebhookEndpointWithSecretSerializer(WebhookEndpointSerializer):
    """Only in the answers to create and rotate: the secret is never shown again."""

    secret = serializers.CharField(read_only=True)

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]


class RotateSerializer(serializers.Serializer):
    overlap_hours = serializers.IntegerField(min_value=0, max_value=24 * 30, default=24,
                                             help_text="How long the previous secret keeps signing.")


class DeliveryAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = ["number", "started_at", "finished_at", "outcome", "status_code", "latency_ms", "response_excerpt",
                  "error"]


class DeliverySerializer(serializers.ModelSerializer):
    event_type = serializers.CharField(source="event.type", read_only=True, default=None)
    attempt_log = DeliveryAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = Delivery
        fields = ["id", "uuid", "rule", "event", "event_type", "channel", "recipient", "webhook_endpoint",
                  "creditor_id", "is_test", "status", "attempts", "next_attempt_at", "last_status_code",
                  "last_latency_ms", "last_response", "last_error", "sent_at", "dead_at", "created_at",
                  "subject", "body_text", "body_json", "attempt_log"]
        read_only_fields = fields


class NotificationTemplateSerializer(serializers.ModelSerializer):
    class Meta:
        model = NotificationTemplate
        fields = ["id", "key", "channel", "locale", "subject", "body_text", "body_html", "body_json", "updated_at"]
        read_only_fields = ["updated_at"]

    def validate(self, attrs):
        errors = {}
        for name in ("subject", "body_text", "body_html", "body_json"):
            try:
                template_check(attrs.get(name) or "", html=name == "body_html")
            except TemplateRefused as exc:
                errors[name] = [str(exc)]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class NotificationRuleSerializer(serializers.ModelSerializer):
    event_type = serializers.CharField(help_text="An event type of the catalog (docs/events.md).")
    staff_group = serializers.SlugRelatedField(slug_field="name", queryset=Group.objects.all(), required=False,
                                               allow_null=True)

    class Meta:
        model = NotificationRule
        fields = ["id", "name", "is_active", "event_type", "creditor_id", "match", "conditions", "channel",
                  "template", "recipient", "addresses", "staff_group", "webhook_endpoint", "outbox_name",
                  "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]

    def validate(self, attrs):
        merged = {f: getattr(self.instance, f) for f in self.Meta.fields
                  if self.instance is not None and hasattr(self.instance, f)}
        merged.update(attrs)
        try:
            attrs["conditions"] = rule_validate(
                event_type=merged.get("event_type", ""), channel=merged.get("channel", ""),
                template=merged.get("template"), recipient=merged.get("recipient", ""),
                conditions=merged.get("conditions"), addresses=merged.get("addresses") or "",
                staff_group=merged.get("staff_group"), webhook_endpoint=merged.get("webhook_endpoint"),
                outbox_name=merged.get("outbox_name") or "")
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        return attrs
