"""Expression indexes for the reference matching rule: invoice numbers and payment-request
references looked up in their canonical form (upper case, without - / _ . and spaces), the
SQL twin of reconciliation.references.canonical. Same syntax on PostgreSQL and SQLite."""
from django.db import migrations


def _canonical(column: str) -> str:
    expression = f'"{column}"'
    for char in ("-", "/", "_", ".", " "):
        expression = f"REPLACE({expression}, '{char}', '')"
    return f"UPPER({expression})"


class Migration(migrations.Migration):
    dependencies = [
        ("reconciliation", "0001_issue4_reconciliation"),
        ("collections_app", "0003_issue4_virtual_ibans"),
    ]

    operations = [
        migrations.RunSQL(
            f"CREATE INDEX recon_invoice_ref_canon ON collections_app_invoice ({_canonical('external_ref')})",
            "DROP INDEX recon_invoice_ref_canon"),
        migrations.RunSQL(
            f"CREATE INDEX recon_request_ref_canon ON collections_app_paymentrequest ({_canonical('reference')})",
            "DROP INDEX recon_request_ref_canon"),
    ]
