"""API representations. Writes go through collections_app.services, never through .save()."""
from __future__ import annotations

import dataclasses
from decimal import Decimal

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from collections_app import services
from collections_app.models import (
    ALL_PAY_METHODS,
    Creditor,
    Customer,
    Installment,
    InstallmentPlan,
    Invoice,
    Mandate,
    Payment,
    PaymentAllocation,
    PaymentRequest,
    Refund,
)
from collections_app.money import CURRENCY_EXPONENTS, DECIMAL_PLACES, MAX_DIGITS
from collections_app.selectors import transfer_beneficiary
from collections_app.virtual_ibans.selectors import virtual_iban_for_customer
from collections_app.virtual_ibans.services import virtual_iban_ensure
from notifications.models import Event


def amount_field(**kwargs) -> serializers.DecimalField:
    kwargs.setdefault("max_digits", MAX_DIGITS)
    kwargs.setdefault("decimal_places", DECIMAL_PLACES)
    kwargs.setdefault("coerce_to_string", True)
    return serializers.DecimalField(**kwargs)


def positive_amount_field(**kwargs) -> serializers.DecimalField:
    return amount_field(min_value=Decimal("0.01"), **kwargs)


class CurrencyField(serializers.ChoiceField):
    default_error_messages = {"invalid_choice": "Unknown currency {input}."}

    def __init__(self, **kwargs):
        super().__init__(choices=sorted(CURRENCY_EXPONENTS), **kwargs)

    def to_internal_value(self, data):
        return super().to_internal_value(data.upper() if isinstance(data, str) else data)


class CreditorScopedMixin:
    """Resolves the creditor from the API key, or from the `creditor` field for global keys."""

    def resolve_creditor(self, attrs: dict) -> Creditor:
        api_key = self.context["request"].auth
        given = attrs.pop("creditor", None)
        if api_key.creditor_id:
            if given is not None and given.pk != api_key.creditor_id:
                raise serializers.ValidationError({"creditor": ["This API key cannot act for that creditor."]})
            return api_key.creditor
        if given is None:
            only = list(Creditor.objects.filter(is_active=True)[:2])
            if len(only) == 1:
                return only[0]
            raise serializers.ValidationError({"creditor": ["This field is required."]})
        return given


class CustomerSerializer(CreditorScopedMixin, serializers.ModelSerializer):
    creditor = serializers.PrimaryKeyRelatedField(queryset=Creditor.objects.all(), required=False)
    currency = CurrencyField(required=False)
    credit_balance = amount_field(read_only=True)
    portal_url = serializers.SerializerMethodField()
    tags = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    virtual_iban = serializers.SerializerMethodField(help_text="The customer's virtual IBAN for transfers, if any.")

    class Meta:
        model = Customer
        fields = ["id", "creditor", "external_ref", "name", "company_name", "is_business", "email", "phone",
                  "locale", "time_zone", "address_line1", "postal_code", "city", "country", "tags", "currency",
                  "credit_balance", "portal_url", "virtual_iban", "notes", "created_at", "updated_at"]
        read_only_fields = ["id", "credit_balance", "portal_url", "virtual_iban", "created_at", "updated_at"]
        validators = []  # uniqueness is the service's job (409 duplicate_reference)

    def get_portal_url(self, obj: Customer) -> str:
        return f"{settings.PUBLIC_BASE_URL}/portal/{obj.portal_token}/"

    def get_virtual_iban(self, obj: Customer) -> str | None:
        virtual = virtual_iban_for_customer(customer_id=obj.pk)
        return virtual.iban if virtual else None

    def validate_time_zone(self, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise serializers.ValidationError("Unknown time zone.") from exc
        return value

    def create(self, validated_data):
        creditor = self.resolve_creditor(validated_data)
        return services.customer_create(creditor=creditor, **validated_data)

    def update(self, instance, validated_data):
        validated_data.pop("creditor", None)
        validated_data.pop("external_ref", None)
        return services.customer_update(customer=instance, **validated_data)


class InvoiceSerializer(CreditorScopedMixin, serializers.ModelSerializer):
    creditor = serializers.PrimaryKeyRelatedField(queryset=Creditor.objects.all(), required=False)
    customer = serializers.PrimaryKeyRelatedField(queryset=Customer.objects.all())
    currency = CurrencyField(required=False)
    amount_total = positive_amount_field()
    amount_paid = amount_field(read_only=True)
    amount_due = amount_field(read_only=True)

    class Meta:
        model = Invoice
        fields = ["id", "creditor", "customer", "external_ref", "description", "currency", "amount_total",
                  "amount_paid", "amount_due", "issue_date", "due_date", "status", "paid_at", "created_at",
                  "updated_at"]
        read_only_fields = ["id", "status", "paid_at", "created_at", "updated_at"]
        validators = []

    def validate(self, attrs):
        issue, due = attrs.get("issue_date"), attrs.get("due_date")
        if issue and due and due < issue:
            raise serializers.ValidationError({"due_date": ["The due date cannot be before the issue date."]})
        return attrs

    def create(self, validated_data):
        creditor = self.resolve_creditor(validated_data)
        customer = validated_data.pop("customer")
        if customer.creditor_id != creditor.pk:
            raise serializers.ValidationError({"customer": ["Unknown customer for this creditor."]})
        return services.invoice_create(creditor=creditor, customer=customer, **validated_data)

    def update(self, instance, validated_data):
        for frozen in ("creditor", "customer", "external_ref", "currency", "issue_date"):
            if frozen in validated_data and validated_data[frozen] != getattr(instance, frozen):
                raise serializers.ValidationError({frozen: ["This field cannot be changed."]})
        return services.invoice_update(invoice=instance, amount_total=validated_data.get("amount_total"),
                                       due_date=validated_data.get("due_date"),
                                       description=validated_data.get("description"))


class TransferSerializer(serializers.Serializer):
    name = serializers.CharField()
    iban = serializers.CharField()
    bic = serializers.CharField()
    reference = serializers.CharField()
    virtual = serializers.BooleanField()


class PaymentRequestSerializer(CreditorScopedMixin, serializers.ModelSerializer):
    creditor = serializers.PrimaryKeyRelatedField(queryset=Creditor.objects.all(), required=False)
    customer = serializers.PrimaryKeyRelatedField(queryset=Customer.objects.all())
    invoices = serializers.PrimaryKeyRelatedField(queryset=Invoice.objects.all(), many=True, required=False)
    currency = CurrencyField(required=False)
    amount = positive_amount_field(required=False)
    amount_paid = amount_field(read_only=True)
    amount_due = amount_field(read_only=True)
    min_partial_amount = positive_amount_field(required=False, allow_null=True)
    allowed_methods = serializers.ListField(
        child=serializers.ChoiceField(choices=[m.value for m in ALL_PAY_METHODS]), required=False, allow_empty=False)
    reference = serializers.CharField(max_length=64, required=False)
    pay_url = serializers.CharField(read_only=True)
    qr_code_url = serializers.SerializerMethodField()
    transfer = serializers.SerializerMethodField(
        help_text="Where to pay by bank transfer: the virtual IBAN when one is allocated (virtual=true).")

    class Meta:
        model = PaymentRequest
        fields = ["id", "creditor", "customer", "invoices", "reference", "short_reference", "pay_url",
                  "qr_code_url", "description", "currency", "amount", "amount_paid", "amount_due",
                  "allowed_methods", "allow_partial", "min_partial_amount", "allow_instalments",
                  "max_instalments", "expires_at", "status", "paid_at", "transfer", "created_at", "updated_at"]
        read_only_fields = ["id", "short_reference", "pay_url", "status", "paid_at", "transfer", "created_at",
                            "updated_at"]
        validators = []

    def get_qr_code_url(self, obj: PaymentRequest) -> str:
        return f"{settings.PUBLIC_BASE_URL}/pay/{obj.token}/qr.png"

    @extend_schema_field(TransferSerializer)
    def get_transfer(self, obj: PaymentRequest) -> dict:
        return dataclasses.asdict(transfer_beneficiary(payment_request=obj))

    def create(self, validated_data):
        creditor = self.resolve_creditor(validated_data)
        customer = validated_data.pop("customer")
        if customer.creditor_id != creditor.pk:
            raise serializers.ValidationError({"customer": ["Unknown customer for this creditor."]})
        request = services.payment_request_create(creditor=creditor, customer=customer, **validated_data)
        # The answer carries the transfer details: allocate the virtual IBAN now, not after commit.
        virtual_iban_ensure(payment_request=request)
        return request

    def update(self, instance, validated_data):
        raise serializers.ValidationError({"non_field_errors": [
            "A payment request cannot be edited; cancel it and create a new one."]})


class AllocationSerializer(serializers.ModelSerializer):
    invoice_external_ref = serializers.CharField(source="invoice.external_ref", read_only=True)
    amount = amount_field(read_only=True)

    class Meta:
        model = PaymentAllocation
        fields = ["invoice", "invoice_external_ref", "amount"]


class PaymentSerializer(serializers.ModelSerializer):
    amount = amount_field(read_only=True)
    allocations = AllocationSerializer(many=True, read_only=True)

    class Meta:
        model = Payment
        fields = ["id", "uuid", "creditor", "customer", "payment_request", "installment", "mandate", "method",
                  "currency", "amount", "status", "attempt", "reason_code", "reason_message", "gateway_reference",
                  "end_to_end_id", "allocations", "retry_of", "succeeded_at", "failed_at", "created_at",
                  "updated_at"]
        read_only_fields = fields


class RefundSerializer(serializers.ModelSerializer):
    payment = serializers.PrimaryKeyRelatedField(queryset=Payment.objects.all())
    amount = positive_amount_field(required=False)

    class Meta:
        model = Refund
        fields = ["id", "uuid", "payment", "amount", "currency", "reason", "status", "gateway_reference",
                  "failure_reason", "completed_at", "created_at", "updated_at"]
        read_only_fields = ["id", "uuid", "currency", "status", "gateway_reference", "failure_reason",
                            "completed_at", "created_at", "updated_at"]

    def validate_payment(self, payment: Payment) -> Payment:
        api_key = self.context["request"].auth
        if api_key.creditor_id and payment.creditor_id != api_key.creditor_id:
            raise serializers.ValidationError("Invalid pk \"%s\" - object does not exist." % payment.pk)
        return payment

    def create(self, validated_data):
        return services.refund_create(payment=validated_data["payment"], amount=validated_data.get("amount"),
                                      reason=validated_data.get("reason", ""))


class MandateSerializer(serializers.ModelSerializer):
    class Meta:
        model = Mandate
        fields = ["id", "creditor", "customer", "reference", "scheme", "holder_name", "iban", "bic", "signed_at",
                  "status", "first_collected_at", "last_collected_at", "cancelled_at", "created_at", "updated_at"]
        read_only_fields = fields


class InstallmentSerializer(serializers.ModelSerializer):
    amount = amount_field(read_only=True)

    class Meta:
        model = Installment
        fields = ["id", "sequence", "due_date", "amount", "currency", "status", "paid_at"]
        read_only_fields = fields


class ScheduleLineSerializer(serializers.Serializer):
    due_date = serializers.DateField()
    amount = positive_amount_field()


class InstallmentPlanSerializer(serializers.ModelSerializer):
    customer = serializers.PrimaryKeyRelatedField(queryset=Customer.objects.all())
    payment_request = serializers.PrimaryKeyRelatedField(queryset=PaymentRequest.objects.all(), required=False,
                                                         allow_null=True)
    mandate = serializers.PrimaryKeyRelatedField(queryset=Mandate.objects.all(), required=False, allow_null=True)
    total_amount = amount_field(read_only=True)
    installments = InstallmentSerializer(many=True, read_only=True)
    schedule = ScheduleLineSerializer(many=True, write_only=True, required=False)
    count = serializers.IntegerField(min_value=2, max_value=12, write_only=True, required=False)
    first_due_date = serializers.DateField(write_only=True, required=False)

    class Meta:
        model = InstallmentPlan
        fields = ["id", "creditor", "customer", "payment_request", "method", "mandate", "saved_card", "currency",
                  "total_amount", "origin", "status", "installments", "schedule", "count", "first_due_date",
                  "created_at", "updated_at"]
        read_only_fields = ["id", "creditor", "currency", "total_amount", "origin", "status", "installments",
                            "saved_card", "created_at", "updated_at"]

    def validate(self, attrs):
        api_key = self.context["request"].auth
        customer = attrs["customer"]
        if api_key.creditor_id and customer.creditor_id != api_key.creditor_id:
            raise serializers.ValidationError({"customer": ["Unknown customer for this creditor."]})
        if not attrs.get("schedule"):
            request = attrs.get("payment_request")
            if request is None or not attrs.get("count") or not attrs.get("first_due_date"):
                raise serializers.ValidationError({"schedule": [
                    "Give a schedule, or a payment_request with count and first_due_date."]})
            attrs["schedule"] = [
                {"due_date": d, "amount": a} for d, a in services.instalment_schedule_build(
                    total=request.amount_due, count=attrs["count"], first_due_date=attrs["first_due_date"],
                    currency=request.currency)]
        return attrs

    def create(self, validated_data):
        return services.installment_plan_create(
            customer=validated_data["customer"], method=validated_data["method"],
            schedule=[(line["due_date"], line["amount"]) for line in validated_data["schedule"]],
            payment_request=validated_data.get("payment_request"), mandate=validated_data.get("mandate"),
            origin=InstallmentPlan.Origin.API)


class EventSerializer(serializers.ModelSerializer):
    class Meta:
        model = Event
        fields = ["id", "uuid", "type", "occurred_at", "creditor_id", "payload"]
        read_only_fields = fields
