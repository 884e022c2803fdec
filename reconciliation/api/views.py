from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from collections_app.api.errors import error_response
from collections_app.api.views import CreditorScopedViewSet
from reconciliation.api import serializers as s
from reconciliation.imports import inline_match_max, statement_import
from reconciliation.models import BankStatement, BankTransaction
from reconciliation.parsers import StatementParseError, UnsupportedFormat


class BankStatementViewSet(CreditorScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                           mixins.CreateModelMixin):
    """Bank statements: upload a file (multipart `file`); the format is detected."""

    queryset = BankStatement.objects.select_related("bank_account").order_by("-id")
    serializer_class = s.BankStatementSerializer
    creditor_lookup = "bank_account__creditor_id"
    filterset_fields = ["bank_account", "format"]

    parser_classes = [MultiPartParser]

    @extend_schema(request={"multipart/form-data": s.StatementUploadSerializer},
                   responses={201: s.ImportResultSerializer, 200: s.ImportResultSerializer})
    def create(self, request, *args, **kwargs):
        upload = s.StatementUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        file = upload.validated_data["file"]
        try:
            result = statement_import(source=file, filename=file.name, origin=BankStatement.Source.API,
                                      inline_match_max=inline_match_max())
        except UnsupportedFormat as exc:
            return error_response("unsupported_format", exc.message, status.HTTP_400_BAD_REQUEST,
                                  {"file": [exc.message]})
        except StatementParseError as exc:
            return error_response("invalid_statement", exc.message, status.HTTP_400_BAD_REQUEST,
                                  {"file": [exc.message]})
        return Response(s.ImportResultSerializer(result.as_dict()).data,
                        status=status.HTTP_200_OK if result.already_imported else status.HTTP_201_CREATED)


class BankTransactionViewSet(CreditorScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    queryset = BankTransaction.objects.prefetch_related("suggestions", "matches").order_by("-id")
    serializer_class = s.BankTransactionSerializer
    filterset_class = type("BankTransactionFilterSet", (django_filters.FilterSet,), {
        "Meta": type("Meta", (), {"model": BankTransaction,
                                  "fields": ["status", "direction", "statement", "bank_account", "customer",
                                             "booking_date", "end_to_end_id"]})})
