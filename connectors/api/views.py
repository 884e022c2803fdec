from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from collections_app.api.errors import error_response
from collections_app.api.views import CreditorScopedViewSet
from collections_app.models import Creditor
from connectors import services
from connectors.api import serializers as s
from connectors.models import ImportJob


class InvoiceImportViewSet(CreditorScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """Bulk invoice imports: POST up to 10,000 invoices, get one result per row back."""

    queryset = ImportJob.objects.order_by("-id")
    serializer_class = s.ImportJobSerializer
    filterset_fields = ["status", "source"]

    @extend_schema(request=s.BulkImportSerializer, responses={
        201: s.BulkImportResultSerializer, 200: OpenApiResponse(s.BulkImportResultSerializer, "dry run"),
        422: OpenApiResponse(s.BulkImportResultSerializer, "all-or-nothing: rows rejected, nothing imported")})
    def create(self, request):
        body = s.BulkImportSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        creditor_id = request.auth.creditor_id or data.get("creditor")
        if request.auth.creditor_id and data.get("creditor") not in (None, request.auth.creditor_id):
            return error_response("permission_denied", "This API key is bound to another creditor.", 403)
        creditor = Creditor.objects.filter(pk=creditor_id).first() if creditor_id else None
        if creditor is None:
            return error_response("validation_error", "Give the creditor.", 400,
                                  {"creditor": ["This field is required."]})
        job, results = services.api_import(creditor=creditor, items=data["invoices"], mode=data["mode"],
                                           dry_run=data["dry_run"])
        code = {ImportJob.Status.PREVIEWED: status.HTTP_200_OK,
                ImportJob.Status.FAILED: status.HTTP_422_UNPROCESSABLE_ENTITY}.get(job.status,
                                                                                     status.HTTP_201_CREATED)
        return Response({"job": s.ImportJobSerializer(job).data, "results": results}, status=code)

    @extend_schema(responses={(200, "text/csv"): bytes})
    @action(detail=True, methods=["get"], url_path="errors")
    def errors_csv(self, request, pk=None):
        job = self.get_object()
        response = HttpResponse(services.errors_csv(job.errors), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-errors.csv"'
        return response

    @extend_schema(responses={(200, "text/csv"): bytes})
    @action(detail=True, methods=["get"], url_path="return-file")
    def return_file(self, request, pk=None):
        job = self.get_object()
        if not job.return_file:
            return error_response("not_found", "This import has no return file.", 404)
        with job.return_file.open("rb") as handle:
            response = HttpResponse(handle.read(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-return.csv"'
        return response
