"""The fields an import row may carry and the default English/French headers that name them."""
from __future__ import annotations

import re
import unicodedata

from django.utils.translation import gettext_lazy as _

# field -> (label, required)
FIELDS: dict[str, tuple[object, bool]] = {
    "external_ref": (_("invoice number"), True),
    "customer_ref": (_("customer reference"), True),
    "name": (_("customer name"), True),
    "email": (_("email"), False),
    "phone": (_("phone"), False),
    "amount": (_("amount"), True),
    "balance": (_("balance due"), False),
    "currency": (_("currency"), False),
    "issue_date": (_("issue date"), False),
    "due_date": (_("due date"), True),
    "description": (_("description"), False),
}

# Headers are compared after header_key(): lower case, accents removed, spaces/dashes/dots → "_".
# When a file has several columns for one field, the alias listed first wins (the company name
# over a contact's name).
# "Amount due" is the debt to collect, unless the file also gives the invoice total: then it is
# what remains due (Odoo's "Total" and "Amount Due").
AMOUNT_DUE_ALIASES = ("amount_due", "montant_du", "montant_a_payer", "invoice_amount_due")
# Not listed anywhere: amounts before tax ("Montant HT", "Subtotal", "Untaxed Amount"), what was
# paid ("Amount Paid", "Déjà réglé"), the customer's own reference or order number ("Réf. client"
# in Dolibarr, "Customer Reference" in Odoo, "External Document No.", "PO Number"), a ledger
# account code (Xero's "AccountCode" is the sales account, the same on every invoice), and Odoo's
# "... Signed" amounts, which are in the company's currency while its "Currency" column is the
# invoice's.
# What was paid is only read to know what remains due, when the file gives the invoice's amount
# but no balance (Invoice Ninja's "Amount" and "Paid"): balance = amount - paid. A bare "Paid" is
# a yes/no flag in some exports (Stripe), but those give the balance too.
PAID_ALIASES = ("amount_paid", "paid_amount", "total_paid", "invoice_amount_paid", "amount_paid_amount", "paid",
                "montant_paye", "montant_regle", "deja_regle", "deja_paye", "total_regle", "total_paye")

DEFAULT_HEADERS: dict[str, tuple[str, ...]] = {
    # "reference" comes after the invoice-number names: Xero, Odoo ("Number"/"Numéro") and others
    # export a "Reference" (the customer's order) next to the invoice number. A bare "Réf." is not
    # one: Odoo's import-compatible export names its customer reference "ref" (and its number "name").
    "external_ref": ("invoice_ref", "invoice_number", "invoice_no", "external_ref", "numero_facture", "num_facture",
                     "no_facture", "n_facture", "reference_facture", "numero_de_facture", "n_de_facture",
                     "no_de_facture", "ref_facture", "number", "numero", "reference", "invoice", "facture",
                     "n_piece", "numero_piece", "no_piece", "numero_de_piece", "n_de_piece", "piece", "ref_piece",
                     "reference_piece", "num", "invoice_num", "document_number", "doc_number", "document_no",
                     "n_document", "numero_document", "no_document", "n_de_document", "numero_de_document",
                     "no_de_document", "bill_number", "n", "no", "ref_creance", "reference_creance", "numero_creance",
                     "n_creance", "no_creance", "reference_de_la_creance", "debt_ref", "debt_reference", "claim_number",
                     "claim_ref", "reference_interne", "voucher_no", "voucher_number"),
    "customer_ref": ("customer_ref", "customer_id", "customer_code", "account", "code_client", "numero_client",
                     "client_id", "n_client", "no_client", "numero_de_client", "compte_client", "code_tiers",
                     "compte_tiers", "customer_number", "customer_no", "client_code", "partner_ref",
                     "partner_reference", "debtor_ref", "debtor_reference", "debtor_id", "ref_debiteur",
                     "code_debiteur", "numero_debiteur", "compte_auxiliaire", "code_auxiliaire", "auxiliaire",
                     "n_compte_tiers", "numero_compte_tiers", "no_compte_tiers", "n_tiers", "numero_tiers",
                     "customer_account", "account_number", "n_dossier", "numero_dossier", "no_dossier", "ref_dossier",
                     "reference_dossier", "dossier", "numero_de_dossier", "n_de_dossier", "case_number", "case_ref"),
    "name": ("raison_sociale", "company_name", "denomination", "societe", "entreprise", "customer_company",
             "customer_name", "client_name", "nom_client", "nom_du_client", "intitule_tiers", "intitule", "name",
             "name_1", "nom", "customer", "client", "partner", "partenaire", "partner_name", "company", "bill_to",
             "debtor", "debtor_name", "debiteur", "nom_debiteur", "nom_du_debiteur", "contact_name", "contact",
             "nom_tiers", "libelle_tiers", "nom_du_tiers", "tiers", "account_name", "libelle_auxiliaire",
             "intitule_auxiliaire", "intitule_compte", "intitule_du_compte", "party_name", "party"),
    "email": ("email", "e_mail", "mail", "customer_email", "courriel", "adresse_email", "email_client",
              "adresse_mail", "email_address", "e_mail_address", "adresse_e_mail", "contact_email", "email_contact",
              "email_recipient"),
    "phone": ("phone", "telephone", "tel", "mobile", "portable", "phone_number", "numero_telephone",
              "numero_de_telephone", "telephone_portable", "tel_portable", "gsm", "telephone_mobile", "mobile_phone",
              "cell_phone", "phone_mobile", "contact_phone"),
    "amount": ("amount", "amount_total", "total", "invoice_amount", "montant", "montant_ttc", "total_ttc",
               "montant_facture", "total_amount", "invoice_total", "grand_total", "amount_incl_tax",
               "total_incl_tax", "montant_creance", "creance", "principal", "montant_total", "montant_total_ttc",
               "montant_echeance", "total_in_currency_signed", "total_en_devise_signe", "original_amount",
               "original_amt", "amount_in_doc_curr", "amount_in_document_currency", "amount_in_local_currency",
               "amount_in_lc", "net_a_payer", "montant_principal", "principal_amount", "montant_de_la_creance",
               "debt_amount", "claim_amount", "invoiced_amount", *AMOUNT_DUE_ALIASES),
    # What remains due according to the ERP, next to the invoice's amount: what it says was paid
    # outside (cheque, cash, offset) is recorded as a payment, so reminders stop.
    "balance": ("balance", "balance_due", "amount_remaining", "remaining", "open_amount", "outstanding",
                "reste_a_payer", "montant_restant", "restant_du", "solde", "solde_du", "open_balance",
                "amount_open", "balance_open", "montant_ouvert", "solde_restant", "reste_du", "reste_a_regler",
                "montant_restant_du", "solde_ttc", "montant_non_regle", "non_regle", "amount_residual", "residual",
                "remaining_amount", "remaining_amt", "solde_ouvert", "solde_de_la_creance", "solde_creance",
                "balance_due_amount", "outstanding_amount"),
    # SAP: the document's amount goes with the document's currency, the local amount with the local
    # one; both amount columns rank in the same order as these.
    "currency": ("currency", "devise", "monnaie", "currency_code", "document_currency", "local_currency"),
    "issue_date": ("issue_date", "invoice_date", "date", "date_facture", "date_emission", "date_de_facture",
                   "date_d_emission", "date_de_facturation", "date_facturation", "date_piece", "date_de_piece",
                   "date_document", "invoice_bill_date", "document_date", "date_issued", "posting_date",
                   "date_comptable", "date_creance", "date_de_la_creance", "date_de_creance", "invoiced_at",
                   "issued_at"),
    "due_date": ("due_date", "date_echeance", "echeance", "date_limite", "due", "date_d_echeance",
                 "date_de_l_echeance", "date_limite_de_paiement", "payment_due_date", "date_due", "due_on",
                 "payment_due", "echeance_facture", "date_limite_reglement", "date_limite_de_reglement",
                 "invoice_date_due", "net_due_date", "exigibilite", "date_exigibilite", "date_d_exigibilite",
                 "date_de_l_exigibilite", "date_d_exigibilite_de_la_creance", "due_at"),
    "description": ("description", "label", "libelle", "designation", "objet", "memo", "commentaire"),
}

# Columns only an export with one row per invoice *line* has (Xero's invoice export, Zoho's
# item export, FreshBooks' invoice details, Invoice Ninja's "Item Cost"/"Item Quantity"): there,
# an invoice number comes back on each of its lines with the same invoice-level values.
LINE_COLUMNS = frozenset({"quantity", "qty", "quantite", "unit_amount", "unit_price", "unitprice", "prix_unitaire",
                          "pu_ht", "line_amount", "line_total", "montant_ligne", "item_name", "item_price",
                          "item_total", "line_description", "article", "produit", "item_cost", "item_quantity",
                          "item_product", "item_notes"})

_NON_WORD = re.compile(r"[^a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def header_key(header: object) -> str:
    """ "N° Facture" -> "n_facture", "InvoiceNumber" -> "invoice_number"."""
    text = unicodedata.normalize("NFKD", str(header or "")).encode("ascii", "ignore").decode()
    return _NON_WORD.sub("_", _CAMEL.sub("_", text).lower()).strip("_")


PAID = "paid"  # not a field of its own: with the amount, it gives the balance
_PAID_RANK = {alias: rank for rank, alias in enumerate(PAID_ALIASES)}
_DEFAULT_INDEX = {alias: (field, rank) for field, aliases in DEFAULT_HEADERS.items()
                  for rank, alias in enumerate(aliases)}
# "Montant TTC (EUR)", "Amount in EUR", "Montant en euros", Stripe's "Due Date (UTC)": the unit is
# not part of the name.
_UNIT_SUFFIX = re.compile(r"_(?:(?:en|in)_)?(?:eur|euros?|usd|gbp|chf|utc)$")


def default_alias(key: str) -> str | None:
    """The default header a header key is, once a unit after the name is left out."""
    if key in _DEFAULT_INDEX:
        return key
    key = _UNIT_SUFFIX.sub("", key)
    return key if key in _DEFAULT_INDEX else None


def resolve_headers(headers: list[str], columns: dict[str, str] | None = None) -> dict[int, str]:
    """Column index -> field, for a file's header row. A saved mapping's columns win over the
    defaults (a field is taken from its first mapped column); among default headers, the
    best-ranked alias wins."""
    explicit = {header_key(k): v for k, v in (columns or {}).items()}
    result: dict[int, str] = {}
    taken: set[str] = set()
    defaults: dict[str, tuple[int, int]] = {}  # field -> (rank, column index)
    amount_due_columns = []
    paid_columns = []
    for index, header in enumerate(headers):
        key = header_key(header)
        if key in explicit:
            # A column mapped to anything else than a field ("", "ignore") is ignored on purpose.
            field = explicit[key]
            if field in FIELDS and field not in taken:
                result[index] = field
                taken.add(field)
        elif (alias := default_alias(key)) is not None:
            field, rank = _DEFAULT_INDEX[alias]
            if field not in defaults or rank < defaults[field][0]:
                defaults[field] = (rank, index)
            if alias in AMOUNT_DUE_ALIASES:
                amount_due_columns.append(index)
        elif (paid := key if key in _PAID_RANK else _UNIT_SUFFIX.sub("", key)) in _PAID_RANK:
            paid_columns.append((_PAID_RANK[paid], index))
    for field, (_rank, index) in defaults.items():
        if field not in taken:
            result[index] = field
            taken.add(field)
    left = [i for i in amount_due_columns if i not in result]
    if left and "balance" not in taken and "amount" in taken:
        result[left[0]] = "balance"
        taken.add("balance")
    if "amount" not in taken and "balance" in taken:
        # Only what remains due is given: that is the amount to collect.
        index = next(i for i, f in result.items() if f == "balance")
        result[index] = "amount"
    if paid_columns and "amount" in taken and "balance" not in taken:
        # The amount and what was paid, no balance: what remains due is their difference.
        result[min(paid_columns)[1]] = PAID
    return dict(sorted(result.items()))


def field_columns(column_fields: dict[int, str]) -> dict[str, int]:
    """Field -> column index. Without a customer reference column, the customer is known by
    its name (exports of small accounting tools have no customer code)."""
    columns = {field: index for index, field in column_fields.items()}
    if "customer_ref" not in columns and "name" in columns:
        columns["customer_ref"] = columns["name"]
    return columns


def names_required_fields(headers: list[str], columns: dict[str, str] | None = None) -> bool:
    """Whether a row can be the header row: it names every required field."""
    found = field_columns(resolve_headers(headers, columns))
    return all(field in found for field, (_label, required) in FIELDS.items() if required)


def is_lines_export(headers: list[str]) -> bool:
    return any(header_key(h) in LINE_COLUMNS for h in headers)
