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
    "currency": (_("currency"), False),
    "issue_date": (_("issue date"), False),
    "due_date": (_("due date"), True),
    "description": (_("description"), False),
}

# Headers are compared after header_key(): lower case, accents removed, spaces/dashes/dots → "_".
DEFAULT_HEADERS: dict[str, tuple[str, ...]] = {
    "external_ref": ("reference", "invoice_ref", "invoice_number", "invoice_no", "invoice", "external_ref",
                     "numero_facture", "num_facture", "no_facture", "n_facture", "facture", "reference_facture",
                     "numero_de_facture", "n_de_facture", "no_de_facture", "n_piece", "numero_piece", "piece"),
    "customer_ref": ("customer_ref", "customer_reference", "customer_id", "customer_code", "account",
                     "code_client", "ref_client", "reference_client", "numero_client", "client_id", "n_client", "no_client",
                     "numero_de_client", "compte_client", "code_tiers", "compte_tiers"),
    "name": ("name", "customer_name", "customer", "company_name", "nom", "nom_client", "nom_du_client",
             "raison_sociale", "client", "intitule", "intitule_tiers", "denomination", "societe"),
    "email": ("email", "e_mail", "mail", "customer_email", "courriel", "adresse_email", "email_client",
              "adresse_mail"),
    "phone": ("phone", "telephone", "tel", "mobile", "portable", "phone_number", "numero_telephone",
              "numero_de_telephone", "telephone_portable", "tel_portable", "gsm"),
    "amount": ("amount", "amount_due", "total", "amount_total", "montant", "montant_ttc", "montant_du",
               "total_ttc", "solde", "montant_a_payer", "reste_a_payer", "montant_restant", "amount_remaining"),
    "currency": ("currency", "devise", "monnaie"),
    "issue_date": ("issue_date", "invoice_date", "date", "date_facture", "date_emission", "date_de_facture",
                   "date_d_emission", "date_de_facturation", "date_piece"),
    "due_date": ("due_date", "date_echeance", "echeance", "date_limite", "due", "date_d_echeance",
                 "date_de_l_echeance", "date_limite_de_paiement", "payment_due_date", "date_due", "due_on"),
    "description": ("description", "label", "libelle", "designation", "objet"),
}

_NON_WORD = re.compile(r"[^a-z0-9]+")


def header_key(header: object) -> str:
    text = unicodedata.normalize("NFKD", str(header or "")).encode("ascii", "ignore").decode()
    return _NON_WORD.sub("_", text.lower()).strip("_")


_DEFAULT_INDEX = {alias: field for field, aliases in DEFAULT_HEADERS.items() for alias in aliases}


def resolve_headers(headers: list[str], columns: dict[str, str] | None = None) -> dict[int, str]:
    """Column index -> field, for a file's header row. A saved mapping's columns win over the
    defaults; a field is taken from its first matching column only."""
    explicit = {header_key(k): v for k, v in (columns or {}).items()}
    result: dict[int, str] = {}
    taken: set[str] = set()
    for index, header in enumerate(headers):
        key = header_key(header)
        # A column mapped to anything else than a field ("", "ignore") is ignored on purpose.
        field = explicit[key] if key in explicit else _DEFAULT_INDEX.get(key)
        if field in FIELDS and field not in taken:
            result[index] = field
            taken.add(field)
    return result


def names_required_fields(headers: list[str], columns: dict[str, str] | None = None) -> bool:
    """Whether a row can be the header row: it names every required field."""
    found = set(resolve_headers(headers, columns).values())
    return all(field in found for field, (_label, required) in FIELDS.items() if required)
