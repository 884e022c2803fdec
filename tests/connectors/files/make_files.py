"""Writes the sample files of tests/connectors/files/ (kept in git; run again to rebuild them).

They look like what ERPs really export: a French accounting package (semicolon, Windows-1252,
comma decimals, dd/mm/yyyy, a quoted label spanning two lines), a web billing tool (UTF-8 with
BOM, English headers), an Excel workbook, and a file with mistakes."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

HERE = Path(__file__).resolve().parent

SAGE = (
    "Numéro facture;Code client;Nom;Email;Téléphone;Montant TTC;Devise;Date facture;Date échéance;Libellé\r\n"
    "FA-2026-0001;CLI001;Société Générale des Eaux;compta@sge.fr;01 23 45 67 89;1 234,56;EUR;05/01/2026;"
    "04/02/2026;Prestation de janvier\r\n"
    "FA-2026-0002;CLI002;Boulangerie Lefèvre;;06 12 34 56 78;89,90;EUR;06/01/2026;05/02/2026;"
    "\"Pain & viennoiseries\r\nlivraison comprise\"\r\n"
    "FA-2026-0003;CLI001;Société Générale des Eaux;compta@sge.fr;01 23 45 67 89;12,00;;07/01/2026;06/02/2026;"
    "Frais de dossier – 12 €\r\n"
)

STRIPE_LIKE = (
    "reference,customer_ref,name,email,phone,amount,currency,issue_date,due_date,description\n"
    "INV-1001,cus_ana,Ana Müller,ana@example.com,+4915112345678,49.90,EUR,2026-01-10,2026-02-09,Plan Pro – janvier\n"
    "INV-1002,cus_bob,Bob O'Neil,bob@example.co.uk,,1250.00,GBP,2026-01-11,2026-02-10,\"Consulting, 5 days\"\n"
)

BAD = (
    "reference;customer_ref;name;amount;currency;issue_date;due_date\n"
    "OK-1;C1;Client Un;10,00;EUR;01/02/2026;01/03/2026\n"
    "BAD-CUR;C2;Client Deux;20,00;XYZ;01/02/2026;01/03/2026\n"
    "BAD-NEG;C3;Client Trois;-5,00;EUR;01/02/2026;01/03/2026\n"
    "BAD-DATE;C4;Client Quatre;30,00;EUR;31/02/2026;01/03/2026\n"
    "OK-1;C5;Client Cinq;40,00;EUR;01/02/2026;01/03/2026\n"
    "OK-2;C6;Client Six;50,00;EUR;01/02/2026;01/03/2026\n"
)

# Saved from Excel by hand: its "sep=;" hint line, a title and a blank line above the header,
# a trailing semicolon on every line, dates with a midnight time, currency codes and symbols.
EXCEL_TITLED = (
    "sep=;\r\n"
    "Export des factures clients au 04/03/2026;;;;;;;\r\n"
    ";;;;;;;\r\n"
    "N° facture;Code client;Raison sociale;Montant TTC;Devise;Date facture;Date d'échéance;\r\n"
    "EX-1;C-10;Menuiserie Gérard;1 234,56 EUR;€;04/03/2026 00:00:00;03/04/2026 00:00:00;\r\n"
    "EX-2;C-11;Café de la Gare;EUR 99,00;Euro;04/03/2026 00:00;03/04/2026 00:00;\r\n"
    "EX-3;C-12;Hôtel du Lac;250,00 USD;EUR;04/03/2026;03/04/2026;\r\n"
)


def _invoice_rows(prefix: str) -> list[list]:
    return [["Référence", "Code client", "Nom", "Montant", "Date pièce", "Échéance"],
            [f"{prefix}-1", "D-1", "Atelier Rousseau", 150.0, dt.datetime(2026, 3, 4), dt.datetime(2026, 4, 3)],
            [f"{prefix}-2", "D-2", "Librairie Moreau", 42.42, dt.datetime(2026, 3, 4), dt.datetime(2026, 4, 4)]]


def _save_workbook(path: Path, sheets: list[tuple[str, list[list]]]) -> None:
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets:
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(row)
    workbook.save(path)


def write_titled_xlsx(path: Path) -> None:
    # a title, an edition date and a blank line above the header
    _save_workbook(path, [("Balance âgée", [["Société Dupont SA — factures ouvertes"],
                                             ["Édité le", dt.datetime(2026, 3, 4, 9, 30)], [],
                                             *_invoice_rows("T")])])


def write_cover_sheet_xlsx(path: Path) -> None:
    # a summary sheet before the invoices
    _save_workbook(path, [("Synthèse", [["Encours clients", "Total"], ["Factures ouvertes", 192.42]]),
                          ("Factures", _invoice_rows("S"))])


def write_xlsx(path: Path) -> None:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Factures"
    sheet.append(["N° facture", "Code client", "Raison sociale", "E-mail", "Montant", "Devise", "Date facture",
                  "Échéance"])
    sheet.append(["X-100", "K-1", "Garage Martin SARL", "garage.martin@orange.fr", 480.5, "EUR",
                  dt.datetime(2026, 3, 1), dt.datetime(2026, 3, 31)])
    sheet.append([101, "K-2", "Cabinet Durand", "", 75, "EUR", dt.datetime(2026, 3, 2), dt.datetime(2026, 4, 1)])
    sheet.append([None, None, None, None, None, None, None, None])
    sheet.append(["X-102", "K-1", "Garage Martin SARL", "garage.martin@orange.fr", "1 020,30", "EUR",
                  "03/03/2026", "02/04/2026"])
    workbook.save(path)


if __name__ == "__main__":
    (HERE / "sage_cp1252_semicolon.csv").write_bytes(SAGE.encode("cp1252"))
    (HERE / "utf8_bom_english.csv").write_bytes(STRIPE_LIKE.encode("utf-8-sig"))
    (HERE / "bad_rows.csv").write_bytes(BAD.encode("utf-8"))
    (HERE / "excel_sep_hint_titled.csv").write_bytes(EXCEL_TITLED.encode("cp1252"))
    write_titled_xlsx(HERE / "titled_export.xlsx")
    write_cover_sheet_xlsx(HERE / "cover_sheet.xlsx")
    write_xlsx(HERE / "excel_export.xlsx")
