from __future__ import annotations

import django_filters
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from collections_app import services
from collections_app.api import serializers as s
from collections_app.api.pagination import EventCursorPagination
from collections_app.models import (
    Customer,
    InstallmentPlan,
    Invoice,
    Mandate,
    Payment,
    PaymentRequest,
    Refund,
)
from notifications.models import Event


class ScopedFilterSet(django_filters.FilterSet):
    updated_since = django_filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")


def filterset_for(model, extra=()):
    fields = ["status", "customer", *extra] if hasattr(model, "status") else ["customer", *extra]
    fields = [f for f in fields if f in {fld.name for fld in model._meta.get_fields()}]
    meta = type("Meta", (), {"model": model, "fields": fields})
    return type(f"{model.__name__}FilterSet", (ScopedFilterSet,), {"Meta": meta})


class CreditorScopedViewSet(viewsets.GenericViewSet):
    """Keys bound to a creditor only ever see that creditor's data."""

    creditor_lookup = "creditor_id"

    def get_queryset(self):
        qs = super().get_queryset()
        api_key = self.request.auth
        if getattr(api_key, "creditor_id", None):
            qs = qs.filter(**{self.creditor_lookup: api_key.creditor_id})
        return qs


class CustomerViewSet(CreditorScopedViewSet, viewsets.ModelViewSet):
    queryset = Customer.objects.order_by("id")
    serializer_class = s.CustomerSerializer
    filterset_class = filterset_for(Customer, extra=["external_ref", "email"])

    def destroy(self, request, *args, **kwargs):
        customer = self.get_object()
        if customer.invoices.exists() or customer.payment_requests.exists():
            from collections_app.api.errors import error_response

            return error_response("customer_has_documents",
                                  "A customer with invoices or payment requests cannot be deleted.",
                                  status.HTTP_409_CONFLICT)
        return super().destroy(request, *args, **kwargs)


class InvoiceViewSet(CreditorScopedViewSet, viewsets.ModelViewSet):
    queryset = Invoice.objects.select_related("customer").order_by("id")
    serializer_class = s.InvoiceSerializer
    filterset_class = filterset_for(Invoice, extra=["external_ref", "due_date"])

    @extend_schema(description="Cancels the invoice (only an open invoice without payments).")
    def destroy(self, request, *args, **kwargs):
        services.invoice_cancel(invoice=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=s.InvoiceSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        invoice = services.invoice_cancel(invoice=self.get_object())
        return Response(self.get_serializer(invoice).data)


class PaymentRequestViewSet(CreditorScopedViewSet, mixins.CreateModelMixin, mixins.ListModelMixin,
                            mixins.RetrieveModelMixin):
    queryset = PaymentRequest.objects.select_related("customer").prefetch_related("invoices").order_by("id")
    serializer_class = s.PaymentRequestSerializer
    filterset_class = filterset_for(PaymentRequest, extra=["reference", "short_reference"])

    @extend_schema(request=None, responses=s.PaymentRequestSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        payment_request = services.payment_request_cancel(payment_request=self.get_object())
        return Response(self.get_serializer(payment_request).data)

    @extend_schema(  # issue 3: QR code of the pay link, for paper letters
        parameters=[OpenApiParameter("fmt", OpenApiTypes.STR, enum=["png", "svg"], description="png (default) or svg")],
        responses={(200, "image/png"): OpenApiTypes.BINARY, (200, "image/svg+xml"): OpenApiTypes.STR})
    @action(detail=True, methods=["get"])
    def qr(self, request, pk=None):
        from django.http import HttpResponse

        from collections_app.paypages import qr

        fmt = request.query_params.get("fmt", "png")
        if fmt not in qr.FORMATS:
            raise ValidationError({"fmt": ["Use png or svg."]})
        body, content_type = qr.render(qr.pay_link_qr(self.get_object()), fmt)
        return HttpResponse(body, content_type=content_type)


class PaymentViewSet(CreditorScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    queryset = Payment.objects.prefetch_related("allocations__invoice").order_by("id")
    serializer_class = s.PaymentSerializer
    filterset_class = filterset_for(Payment, extra=["method", "payment_request"])


class RefundViewSet(CreditorScopedViewSet, mixins.CreateModelMixin, mixins.ListModelMixin,
                    mixins.RetrieveModelMixin):
    queryset = Refund.objects.select_related("payment").order_by("id")
    serializer_class = s.RefundSerializer
    creditor_lookup = "payment__creditor_id"
    filterset_class = type("RefundFilterSet", (ScopedFilterSet,), {
        "Meta": type("Meta", (), {"model": Refund, "fields": ["status", "payment"]})})


class InstallmentPlanViewSet(CreditorScopedViewSet, mixins.CreateModelMixin, mixins.ListModelMixin,
                             mixins.RetrieveModelMixin):
    queryset = InstallmentPlan.objects.prefetch_related("installments").order_by("id")
    serializer_class = s.InstallmentPlanSerializer
    filterset_class = filterset_for(InstallmentPlan, extra=["payment_request", "method"])

    @extend_schema(request=None, responses=s.InstallmentPlanSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        plan = services.installment_plan_cancel(plan=self.get_object())
        return Response(self.get_serializer(plan).data)


class MandateViewSet(CreditorScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    queryset = Mandate.objects.order_by("id")
    serializer_class = s.MandateSerializer
    filterset_class = filterset_for(Mandate, extra=["reference"])


@extend_schema_view(list=extend_schema(parameters=[
    OpenApiParameter("since", OpenApiTypes.STR, description="An event id or an ISO 8601 time: only later events."),
    OpenApiParameter("type", OpenApiTypes.STR, description="Comma-separated event types."),
]))
class EventViewSet(CreditorScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """The event feed: read it in order with the cursor, or from `?since=`."""

    queryset = Event.objects.all()
    serializer_class = s.EventSerializer
    pagination_class = EventCursorPagination
    filter_backends: list = []

    def get_queryset(self):
        qs = super().get_queryset()
        since = self.request.query_params.get("since")
        if since:
            if since.isdigit():
                qs = qs.filter(id__gt=int(since))
            else:
                moment = parse_datetime(since)
                if moment is None:
                    raise ValidationError({"since": ["Give an event id or an ISO 8601 date-time."]})
                qs = qs.filter(occurred_at__gt=moment)
        types = self.request.query_params.get("type")
        if types:
            qs = qs.filter(type__in=[t.strip() for t in types.split(",") if t.strip()])
        return qs
