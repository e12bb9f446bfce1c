"""The public document types Docmill ships: receipt, invoice, purchase order, bank statement,
utility bill, ID document and letter.

Each is a plain JSON Schema (draft 2020-12) whose properties carry hints the built-in
extractor reads and any other consumer may ignore:

- `x-docmill-synonyms`: label words printed next to the value, in the languages the corpus
  and most users meet (English, German, French, Dutch, Spanish, Malay);
- `x-docmill-kind`: what the value is when the JSON type does not say it (organization,
  address, person, amount, currency, date, identifier, tax_id, iban, bic, email, phone, url,
  percent, quantity, text);
- `x-docmill-position`: `top` / `bottom` where the value usually sits on the page;
- `x-docmill-exclude`: words that make a label line mean something else ("total qty" is not
  the total).

Property names of the receipt follow SROIE (company, date, address, total) and those of the
invoice follow invoice2data (issuer, invoice_number, date, amount, currency, lines...), so
their outputs compare directly with those datasets' ground truth.
"""

from __future__ import annotations

import copy
from typing import Any


def _p(type_: str | list[str], title: str, description: str, synonyms: list[str] | None = None,
       kind: str | None = None, position: str | None = None, exclude: list[str] | None = None,
       **extra: Any) -> dict[str, Any]:
    prop: dict[str, Any] = {"type": type_, "title": title, "description": description}
    if synonyms:
        prop["x-docmill-synonyms"] = synonyms
    if kind:
        prop["x-docmill-kind"] = kind
    if position:
        prop["x-docmill-position"] = position
    if exclude:
        prop["x-docmill-exclude"] = exclude
    prop.update(extra)
    return prop


def _date(title: str, description: str, synonyms: list[str]) -> dict[str, Any]:
    return _p("string", title, description + " (ISO 8601, YYYY-MM-DD).", synonyms, kind="date",
              format="date")


def _money(title: str, description: str, synonyms: list[str], **kw: Any) -> dict[str, Any]:
    return _p("number", title, description, synonyms, kind="amount", **kw)


def _schema(title: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
            "title": title, "properties": properties, "required": required,
            "additionalProperties": False}


_CURRENCY = _p("string", "Currency", "ISO 4217 code of the document's currency (USD, EUR, "
               "MYR...).", ["currency", "devise", "währung", "valuta", "moneda"], kind="currency",
               pattern="^[A-Z]{3}$")

_TOTAL_EXCLUDE = ["qty", "quantity", "items", "item", "sub", "subtotal", "excl", "exclusive",
                  "excluding", "gst", "tax", "vat", "saving", "savings", "discount", "disc",
                  "tendered", "change", "points", "weight", "ht", "net", "untaxed", "before"]

_ITEMS_RECEIPT = {
    "type": "array", "title": "Items", "description": "Purchased items, one per line.",
    "x-docmill-synonyms": ["items", "description", "qty"],
    "items": {"type": "object", "properties": {
        "description": _p("string", "Description", "What was bought.",
                          ["description", "item", "article", "product", "desc", "particulars"],
                          kind="text"),
        "quantity": _p("number", "Quantity", "How many.", ["qty", "quantity", "pcs", "units"],
                       kind="quantity"),
        "unit_price": _money("Unit price", "Price of one.", ["price", "unit price", "u.price",
                                                             "rate"]),
        "amount": _money("Amount", "Line total.", ["amount", "amt", "total", "rm"]),
    }}}

_LINES_INVOICE = {
    "type": "array", "title": "Line items",
    "description": "The invoiced lines, in order.",
    "x-docmill-synonyms": ["description", "quantity", "unit price", "amount"],
    "items": {"type": "object", "properties": {
        "name": _p("string", "Description", "What is invoiced on this line.",
                   ["description", "item", "product", "article", "artikel", "désignation",
                    "designation", "beschreibung", "title", "service", "omschrijving"],
                   kind="text"),
        "qty": _p("number", "Quantity", "How many units.",
                  ["quantity", "qty", "menge", "aantal", "nombre", "quantité", "units"],
                  kind="quantity"),
        "price_unit": _money("Unit price", "Price of one unit.",
                             ["unit price", "price", "rate", "prijs per stuk", "p.u. ht",
                              "prix unitaire", "vk-preis", "einzelpreis", "price per unit"]),
        "line_tax_percent": _p("number", "Tax rate", "Tax rate of the line, in percent.",
                               ["tax", "taxes", "vat", "btw", "tva", "mwst", "tax(%)", "gst"],
                               kind="percent"),
        "price_subtotal": _money("Line amount", "Amount of the line.",
                                 ["amount", "total", "line total", "zeilenbetrag", "montant",
                                  "montant ht", "prijs incl. btw", "betrag", "subtotal"]),
    }}}


def _types() -> list[dict[str, Any]]:
    receipt = _schema("Receipt", {
        "company": _p("string", "Company", "Name of the shop or company that issued the "
                      "receipt (usually the first line).",
                      ["merchant", "seller", "vendor", "sold by"],
                      kind="organization", position="top"),
        "address": _p("string", "Address", "Address of the shop, as printed under its name.",
                      ["address", "addr", "alamat"], kind="address", position="top"),
        "date": _date("Date", "Date of the purchase",
                      ["date", "tarikh", "datum", "fecha", "txn date", "trans date", "dt"]),
        "time": _p("string", "Time", "Time of the purchase (HH:MM).", ["time", "masa"],
                   kind="time"),
        "receipt_number": _p("string", "Receipt number", "Number of the receipt or bill.",
                             ["receipt no", "receipt #", "bill no", "invoice no", "inv no",
                              "doc no", "document no", "transaction no", "trans no",
                              "cash bill no", "slip no", "no"], kind="identifier"),
        "tax_id": _p("string", "Tax id", "The seller's tax registration (GST/VAT/SST id).",
                     ["gst id", "gst reg no", "gst no", "sst id", "vat no", "tax id", "co reg",
                      "company reg no"], kind="tax_id"),
        "phone": _p("string", "Phone", "The shop's telephone number.",
                    ["tel", "phone", "telephone", "tel no", "hp"], kind="phone"),
        "subtotal": _money("Subtotal", "Total before tax, rounding and discounts.",
                           ["subtotal", "sub total", "sub-total", "total excl gst",
                            "total excluding gst", "amount excl"]),
        "tax": _money("Tax", "Tax amount (GST, SST, VAT).",
                      ["gst", "total gst", "gst amount", "sst", "tax", "vat", "service tax",
                       "gst 6%", "total tax"], exclude=["id", "reg", "no", "summary"]),
        "rounding": _money("Rounding", "Rounding adjustment.",
                           ["rounding", "rounding adj", "rounding adjustment", "round adj"]),
        "total": _money("Total", "Total amount paid, after tax and rounding.",
                        ["total", "grand total", "total amount", "nett total", "net total",
                         "total rm", "total (rm)", "amount due", "total payable",
                         "total sales", "total inclusive gst", "total incl gst",
                         "rounded total", "total rounded", "net total rounded", "amount",
                         "jumlah", "balance due",
                         "total due", "to pay", "total sales (inclusive gst)"],
                        position="bottom", exclude=_TOTAL_EXCLUDE),
        "paid": _money("Paid", "Amount tendered.", ["cash", "paid", "tendered", "visa",
                                                    "master", "credit card", "card",
                                                    "payment"]),
        "change": _money("Change", "Change given back.", ["change", "change due", "baki"]),
        "currency": _CURRENCY,
        "items": _ITEMS_RECEIPT,
    }, ["company", "date", "address", "total"])

    invoice = _schema("Invoice", {
        "issuer": _p("string", "Issuer", "Company that issued the invoice (the seller).",
                     ["issuer", "seller", "vendor", "supplier", "sold by", "from",
                      "service provider", "company", "leverancier", "fournisseur",
                      "verkäufer", "lieferant"], kind="organization", position="top"),
        "invoice_number": _p("string", "Invoice number", "The invoice's own number.",
                             ["invoice number", "invoice no", "invoice #", "invoice",
                              "invoice id", "bill no", "facture", "facture n°",
                              "factuurnummer", "rechnungsnr", "rechnungsnummer",
                              "rechnung nr", "numéro de facture", "factura", "no. factura",
                              "document no"], kind="identifier",
                             exclude=["date", "datum", "total", "summary", "amount"]),
        "date": _date("Invoice date", "Date the invoice was issued",
                      ["invoice date", "date", "issue date", "date of issue", "billing date",
                       "factuurdatum", "rechnungsdatum", "datum", "date de facture", "du",
                       "fecha", "fecha de factura", "tax date"]),
        "date_due": _date("Due date", "Date by which the invoice must be paid",
                          ["due date", "payment due", "date due", "due", "pay by",
                           "zahlungsziel", "fällig", "vervaldatum", "date limite de paiement",
                           "échéance", "fecha de vencimiento"]),
        "order_id": _p("string", "Order number", "The buyer's order or purchase-order number.",
                       ["order id", "order number", "order no", "po number", "po no",
                        "purchase order", "ordernummer", "bestellnummer", "commande",
                        "customer order"], kind="identifier", exclude=["date", "datum"]),
        "customer_name": _p("string", "Customer", "Who is billed.",
                            ["bill to", "billed to", "customer", "client", "sold to",
                             "invoice to", "nom de l'abonné", "kunde", "klant"],
                            kind="organization"),
        "customer_number": _p("string", "Customer number", "The seller's number for the "
                              "customer.", ["customer number", "customer no", "account number",
                                            "klantnummer", "kundennr", "kundennummer",
                                            "id.client", "client id", "numéro client"],
                              kind="identifier"),
        "amount_untaxed": _money("Amount before tax", "Total without tax.",
                                 ["subtotal", "sub total", "total excl. vat", "total ht",
                                  "montant ht", "net amount", "exclusief btw", "total net",
                                  "nettobetrag", "untaxed amount", "total before tax",
                                  "total hors taxes"], position="bottom"),
        "amount_tax": _money("Tax amount", "Total tax (VAT, GST, sales tax).",
                             ["tax", "vat", "tva", "btw", "mwst", "gst", "sales tax",
                              "tax amount", "vat amount", "montant tva", "umsatzsteuer"],
                             position="bottom",
                             exclude=["id", "number", "no", "reg", "excl", "incl", "ht",
                                      "inclusive", "invoice"]),
        "amount": _money("Total", "Total amount of the invoice, tax included (what is due).",
                         ["total", "grand total", "total amount", "amount due", "total due",
                          "total amount due", "balance due", "total ttc", "montant ttc",
                          "somme à payer", "totaal", "total eur", "gesamtbetrag",
                          "rechnungsbetrag", "total for this invoice", "total facture",
                          "amount payable", "importe total", "te betalen"],
                         position="bottom", exclude=_TOTAL_EXCLUDE),
        "currency": _CURRENCY,
        "vat": _p("string", "Seller's VAT number", "Tax identification of the issuer (VAT, "
                  "UStId, TVA intracommunautaire, GSTIN).",
                  ["vat number", "vat no", "vat id", "vat reg no", "ustid", "ust-id",
                   "ust-idnr", "btw", "btw-nummer", "tva", "n° de tva", "tva intracommunautaire",
                   "n° de tva intra communautaire", "gstin", "tax id", "vat/tin", "tin", "nif",
                   "cif"], kind="tax_id"),
        "iban": _p("string", "IBAN", "Bank account (IBAN) to pay to.",
                   ["iban", "bank account", "account", "kto-nr", "rekeningnummer"],
                   kind="iban"),
        "bic": _p("string", "BIC", "Bank identifier (BIC/SWIFT).", ["bic", "swift",
                                                                     "swift code", "bic/swift"],
                  kind="bic"),
        "email": _p("string", "Email", "Contact e-mail printed on the invoice.",
                    ["email", "e-mail", "mail"], kind="email", format="email"),
        "phone": _p("string", "Phone", "Contact telephone printed on the invoice.",
                    ["phone", "tel", "telephone", "téléphone", "telefon"], kind="phone"),
        "lines": _LINES_INVOICE,
    }, ["issuer", "invoice_number", "date", "amount"])

    purchase_order = _schema("Purchase order", {
        "po_number": _p("string", "PO number", "Number of the purchase order.",
                        ["po number", "po no", "p.o. number", "purchase order", "order number",
                         "order no", "bestellnummer", "bon de commande"], kind="identifier",
                        exclude=["date"]),
        "date": _date("Order date", "Date of the order", ["date", "order date", "po date"]),
        "buyer": _p("string", "Buyer", "Company placing the order.",
                    ["buyer", "bill to", "ordered by", "purchaser", "customer"],
                    kind="organization", position="top"),
        "supplier": _p("string", "Supplier", "Company the goods are ordered from.",
                       ["vendor", "supplier", "to", "seller"], kind="organization"),
        "ship_to": _p("string", "Ship to", "Delivery address.",
                      ["ship to", "deliver to", "delivery address", "shipping address"],
                      kind="address"),
        "delivery_date": _date("Delivery date", "Requested delivery date",
                               ["delivery date", "required by", "ship date", "need by"]),
        "payment_terms": _p("string", "Payment terms", "Agreed payment terms.",
                            ["payment terms", "terms"], kind="text"),
        "subtotal": _money("Subtotal", "Total before tax.", ["subtotal", "sub total"]),
        "tax": _money("Tax", "Tax amount.", ["tax", "vat", "sales tax"],
                      exclude=["id", "number"]),
        "total": _money("Total", "Total of the order.", ["total", "grand total", "order total",
                                                        "total amount"],
                        position="bottom", exclude=_TOTAL_EXCLUDE),
        "currency": _CURRENCY,
        "items": {"type": "array", "title": "Items", "description": "Ordered items.",
                  "items": {"type": "object", "properties": {
                      "description": _p("string", "Description", "What is ordered.",
                                        ["description", "item", "product"], kind="text"),
                      "quantity": _p("number", "Quantity", "How many.", ["qty", "quantity"],
                                     kind="quantity"),
                      "unit_price": _money("Unit price", "Price of one.", ["unit price",
                                                                           "price", "rate"]),
                      "amount": _money("Amount", "Line total.", ["amount", "total",
                                                                 "line total"])}}},
    }, ["po_number", "date", "total"])

    bank_statement = _schema("Bank statement", {
        "bank_name": _p("string", "Bank", "Bank that issued the statement.",
                        ["bank"], kind="organization", position="top"),
        "account_holder": _p("string", "Account holder", "Owner of the account.",
                             ["account holder", "account name", "name", "customer"],
                             kind="person"),
        "account_number": _p("string", "Account number", "Number of the account.",
                             ["account number", "account no", "acct no", "account"],
                             kind="identifier"),
        "iban": _p("string", "IBAN", "IBAN of the account.", ["iban"], kind="iban"),
        "period_start": _date("Period start", "First day of the statement period",
                              ["from", "period from", "statement period", "period"]),
        "period_end": _date("Period end", "Last day of the statement period", ["to", "until",
                                                                               "period to"]),
        "opening_balance": _money("Opening balance", "Balance at the start of the period.",
                                  ["opening balance", "previous balance", "balance brought "
                                   "forward", "beginning balance", "starting balance"]),
        "closing_balance": _money("Closing balance", "Balance at the end of the period.",
                                  ["closing balance", "new balance", "ending balance",
                                   "balance carried forward"], position="bottom"),
        "currency": _CURRENCY,
        "transactions": {"type": "array", "title": "Transactions",
                         "description": "Movements on the account.",
                         "items": {"type": "object", "properties": {
                             "date": _date("Date", "Booking date", ["date", "booking date",
                                                                    "value date"]),
                             "description": _p("string", "Description", "Text of the "
                                               "movement.", ["description", "details",
                                                             "transaction", "particulars"],
                                               kind="text"),
                             "debit": _money("Debit", "Money out.", ["debit", "withdrawal",
                                                                     "paid out"]),
                             "credit": _money("Credit", "Money in.", ["credit", "deposit",
                                                                      "paid in"]),
                             "balance": _money("Balance", "Balance after the movement.",
                                               ["balance"])}}},
    }, ["bank_name", "account_number", "closing_balance"])

    utility_bill = _schema("Utility bill", {
        "provider": _p("string", "Provider", "Utility company (electricity, gas, water, "
                       "telecom).", ["provider", "supplier"], kind="organization",
                       position="top"),
        "customer_name": _p("string", "Customer", "Account holder.", ["customer", "name",
                                                                      "account holder"],
                            kind="person"),
        "account_number": _p("string", "Account number", "Customer account number.",
                             ["account number", "account no", "customer number",
                              "contract number"], kind="identifier"),
        "service_address": _p("string", "Service address", "Where the service is supplied.",
                              ["service address", "supply address", "premises"],
                              kind="address"),
        "bill_date": _date("Bill date", "Date of the bill", ["bill date", "date", "issue date",
                                                             "statement date"]),
        "period_start": _date("Period start", "Start of the billing period",
                              ["billing period", "period", "from"]),
        "period_end": _date("Period end", "End of the billing period", ["to", "until"]),
        "due_date": _date("Due date", "Date the payment is due", ["due date", "payment due",
                                                                  "pay by"]),
        "usage": _p("number", "Usage", "Consumption in the period (kWh, m³...).",
                    ["usage", "consumption", "kwh", "units used"], kind="quantity"),
        "amount_due": _money("Amount due", "Amount to pay.", ["amount due", "total due",
                                                              "total amount due", "total",
                                                              "balance due"],
                             position="bottom", exclude=_TOTAL_EXCLUDE),
        "currency": _CURRENCY,
    }, ["provider", "amount_due"])

    id_document = _schema("ID document", {
        "document_type": _p("string", "Document type", "Passport, identity card, driving "
                            "licence...", ["passport", "identity card", "driving licence"],
                            kind="text", position="top"),
        "document_number": _p("string", "Document number", "Number of the document.",
                              ["document no", "passport no", "card no", "id no", "number",
                               "no"], kind="identifier"),
        "surname": _p("string", "Surname", "Family name.", ["surname", "last name",
                                                            "family name", "nom", "name"],
                      kind="person"),
        "given_names": _p("string", "Given names", "First names.",
                          ["given names", "first name", "forenames", "prénoms", "vornamen"],
                          kind="person"),
        "date_of_birth": _date("Date of birth", "Birth date",
                               ["date of birth", "birth date", "dob", "born",
                                "date de naissance", "geburtsdatum"]),
        "nationality": _p("string", "Nationality", "Nationality of the holder.",
                          ["nationality", "nationalité", "staatsangehörigkeit"], kind="text"),
        "sex": _p("string", "Sex", "Sex as printed (M/F/X).", ["sex", "sexe", "gender"],
                  kind="text"),
        "issue_date": _date("Date of issue", "Date the document was issued",
                            ["date of issue", "issued", "issue date"]),
        "expiry_date": _date("Date of expiry", "Date the document expires",
                             ["date of expiry", "expiry date", "expires", "valid until"]),
        "issuing_authority": _p("string", "Issuing authority", "Who issued it.",
                                ["authority", "issued by", "issuing authority"], kind="text"),
    }, ["document_number", "surname"])

    letter = _schema("Letter", {
        "sender": _p("string", "Sender", "Who wrote the letter (person or organization).",
                     ["from", "sender"], kind="organization", position="top"),
        "recipient": _p("string", "Recipient", "To whom it is addressed.",
                        ["to", "dear", "attention", "attn"], kind="person"),
        "date": _date("Date", "Date of the letter", ["date", "dated"]),
        "subject": _p("string", "Subject", "What it is about.", ["subject", "re", "regarding",
                                                                 "objet", "betreff"],
                      kind="text"),
        "salutation": _p("string", "Salutation", "Opening greeting.", ["dear"], kind="text"),
        "closing": _p("string", "Closing", "Closing formula and signature.",
                      ["sincerely", "regards", "yours faithfully", "yours truly"], kind="text"),
    }, ["sender", "date"])

    return [
        {"codeType": "receipt", "name": "Receipt",
         "description": "A till or shop receipt: the merchant's name and address, the date, "
         "the items bought and the total paid.", "schema": receipt,
         "keywords": ["receipt", "cash", "change", "total", "gst", "qty", "thank you",
                      "cashier", "tax invoice", "sdn bhd", "rounding", "subtotal", "tel",
                      "item", "price", "amount", "please come again", "member"]},
        {"codeType": "invoice", "name": "Invoice",
         "description": "A commercial invoice: a seller bills a customer, with an invoice "
         "number and date, line items, tax and the total due.", "schema": invoice,
         "keywords": ["invoice", "invoice number", "invoice date", "bill to", "due date",
                      "vat", "tax", "subtotal", "total", "amount due", "payment terms",
                      "facture", "rechnung", "factuur", "factura", "iban", "quantity",
                      "unit price"]},
        {"codeType": "purchase_order", "name": "Purchase order",
         "description": "A purchase order: a buyer orders goods or services from a supplier, "
         "with a PO number, items, quantities, prices and delivery terms.",
         "schema": purchase_order,
         "keywords": ["purchase order", "po number", "p.o.", "order date", "ship to",
                      "vendor", "delivery date", "requested by", "bestellung",
                      "bon de commande", "buyer", "supplier"]},
        {"codeType": "bank_statement", "name": "Bank statement",
         "description": "A bank account statement: the bank, the account, a period, the "
         "opening and closing balances and the list of transactions.",
         "schema": bank_statement,
         "keywords": ["statement", "account statement", "bank", "opening balance",
                      "closing balance", "balance", "debit", "credit", "transactions",
                      "account number", "iban", "withdrawal", "deposit", "kontoauszug"]},
        {"codeType": "utility_bill", "name": "Utility bill",
         "description": "A bill for electricity, gas, water, internet or phone service: the "
         "provider, the customer's account, the billing period, usage and amount due.",
         "schema": utility_bill,
         "keywords": ["bill", "electricity", "gas", "water", "kwh", "meter", "usage",
                      "consumption", "billing period", "account number", "amount due",
                      "tariff", "internet", "mobile", "subscription", "abonnement",
                      "service clients"]},
        {"codeType": "id_document", "name": "ID document",
         "description": "An identity document: passport, national identity card, driving "
         "licence or residence permit.", "schema": id_document,
         "keywords": ["passport", "identity card", "date of birth", "nationality",
                      "date of expiry", "surname", "given names", "sex", "driving licence",
                      "place of birth", "personalausweis", "carte d'identité"]},
        {"codeType": "letter", "name": "Letter",
         "description": "A letter or memo: a sender writes to a recipient, with a date, an "
         "optional subject, a salutation, body paragraphs and a closing and signature.",
         "schema": letter,
         "keywords": ["dear", "sincerely", "kind regards", "best regards", "regards",
                      "yours faithfully", "yours truly", "yours sincerely", "enclosure",
                      "letter", "madam", "sir"]},
    ]


_CACHE = _types()


def builtin_types() -> list[dict[str, Any]]:
    """The public built-in types: dicts with codeType, name, description, schema, keywords
    (fresh copies, so callers may change them)."""
    return copy.deepcopy(_CACHE)


def builtin_type(code: str) -> dict[str, Any] | None:
    return next((copy.deepcopy(t) for t in _CACHE if t["codeType"] == code), None)
