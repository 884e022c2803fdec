from __future__ import annotations

from rest_framework import serializers

from collections_app.api.serializers import amount_field
from reconciliation.models import BankStatement, BankTransaction, Match, Suggestion


class BankStatementSerializer(serializers.ModelSerializer):
    opening_balance = amount_field(read_only=True, allow_null=True)
    closing_balance = amount_field(read_only=True, allow_null=True)
    total_credits = amount_field(read_only=True)
    total_debits = amount_field(read_only=True)
    iban = serializers.CharField(source="bank_account.iban", read_only=True)

    class Meta:
        model = BankStatement
        fields = ["id", "bank_account", "iban", "format", "version", "source", "filename", "statement_id",
                  "sequence_number", "created_by_bank_at", "from_date", "to_date", "currency", "opening_balance",
                  "closing_balance", "total_credits", "total_debits", "transaction_count", "duplicate_count",
                  "warnings", "imported_at"]
        read_only_fields = fields


class StatementUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="camt.052, camt.053, camt.054, MT940 or CFONB 120 (pain.002 status "
                                           "reports too), or a ZIP or gzip of them (all or nothing).")


class ImportResultSerializer(serializers.Serializer):
    format = serializers.CharField()
    filename = serializers.CharField()
    statement_ids = serializers.ListField(child=serializers.IntegerField())
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    already_imported = serializers.BooleanField()
    warnings = serializers.ListField(child=serializers.CharField())
    matching = serializers.DictField(child=serializers.IntegerField())


class SuggestionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Suggestion
        fields = ["invoice", "customer", "score", "reason"]


class MatchSerializer(serializers.ModelSerializer):
    amount = amount_field(read_only=True)

    class Meta:
        model = Match
        fields = ["id", "customer", "payment", "excess_payment", "payment_request", "amount", "written_off",
                  "status", "rule", "created_at", "reversed_at"]


class BankTransactionSerializer(serializers.ModelSerializer):
    amount = amount_field(read_only=True)
    suggestions = SuggestionSerializer(many=True, read_only=True)
    matches = MatchSerializer(many=True, read_only=True)

    class Meta:
        model = BankTransaction
        fields = ["id", "statement", "bank_account", "booking_date", "value_date", "direction", "amount", "currency",
                  "is_reversal", "reason_code", "bank_reference", "end_to_end_id", "transaction_id",
                  "mandate_reference", "bank_transaction_code", "counterparty_name", "counterparty_iban",
                  "credited_iban", "remittance_info", "structured_reference", "batch_reference", "status",
                  "matched_rule", "customer", "returned_payment", "suggestions", "matches", "imported_at"]
        read_only_fields = fields
