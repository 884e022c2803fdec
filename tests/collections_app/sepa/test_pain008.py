"""The pain.008 builder on its own: whatever the names, amounts and bank details the platform
holds, the file it builds validates against the official XSD."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from collections_app.sepa import pain008
from tests.collections_app.collection_helpers import DEBTOR_IBANS

debits = st.builds(
    pain008.DirectDebit,
    instruction_id=st.integers(1, 10**9).map(lambda n: f"A{n}"),
    end_to_end_id=st.uuids().map(lambda u: u.hex),
    amount=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999999.99"), places=2),
    mandate_id=st.text(alphabet="ABCDEFGHJKMNPQRSTVWXYZ0123456789-", min_size=1, max_size=35),
    mandate_signed_on=st.dates(min_value=dt.date(2009, 11, 1), max_value=dt.date(2030, 1, 1)),
    debtor_name=st.text(max_size=200),
    debtor_iban=st.sampled_from(DEBTOR_IBANS),
    debtor_bic=st.sampled_from(["", "AGRIFRPP", "BNPAFRPPXXX", "agrifrpp", "NOT A BIC", "DEUTDEFF500"]),
    remittance=st.text(max_size=300),
    amendment=st.none() | st.builds(pain008.Amendment, original_iban=st.sampled_from(DEBTOR_IBANS),
                                    original_mandate_id=st.sampled_from(["", "OLD-MANDATE-1"])),
)


@settings(max_examples=60, deadline=None)
@given(items=st.lists(debits, min_size=1, max_size=8), version=st.sampled_from(pain008.VERSIONS),
       sequence_type=st.sampled_from(["FRST", "RCUR", "FNAL", "OOFF"]), scheme=st.sampled_from(["CORE", "B2B"]),
       creditor_name=st.text(max_size=100))
def test_any_debits_make_a_valid_file(items, version, sequence_type, scheme, creditor_name):
    batch = pain008.Batch(payment_info_id="PMT-1", collection_date=dt.date(2026, 12, 1), sequence_type=sequence_type,
                          creditor_name=creditor_name, creditor_iban="FR7630006000011234567890189",
                          creditor_bic="AGRIFRPP", creditor_identifier="FR72ZZZ123456", debits=items, scheme=scheme)
    message = pain008.Message(message_id="MSG-1", created_at=dt.datetime(2026, 11, 27, tzinfo=dt.UTC),
                              initiating_party=creditor_name, batches=[batch])
    xml = pain008.build(message, version=version)
    assert f"<CtrlSum>{sum(d.amount for d in items):.2f}</CtrlSum>".encode() in xml


@pytest.mark.parametrize(("raw", "expected"), [
    ("Zoé Lefèvre & Fils", "Zoe Lefevre + Fils"),
    ("東京株式会社", ""),
    ("  O'Neil   (Jr.)  ", "O'Neil (Jr.)"),
    ("a_b@c#d", "a b c d"),
])
def test_sepa_character_set(raw, expected):
    assert pain008.sepa_text(raw, 70) == expected


def test_an_invalid_message_is_refused_with_line_numbers():
    batch = pain008.Batch(payment_info_id="PMT-1", collection_date=dt.date(2026, 12, 1), sequence_type="RCUR",
                          creditor_name="X", creditor_iban="not an iban", creditor_bic="", creditor_identifier="ICS",
                          debits=[pain008.DirectDebit(instruction_id="A1", end_to_end_id="E1", amount=Decimal("1.00"),
                                                      mandate_id="M1", mandate_signed_on=dt.date(2025, 1, 1),
                                                      debtor_name="Y", debtor_iban=DEBTOR_IBANS[0])])
    message = pain008.Message(message_id="MSG", created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                              initiating_party="X", batches=[batch])
    with pytest.raises(pain008.Pain008Invalid) as excinfo:
        pain008.build(message, version="pain.008.001.02")
    assert excinfo.value.errors and excinfo.value.errors[0].startswith("line ")
