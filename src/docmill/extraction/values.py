"""Finding and parsing typed values in a piece of text.

Each finder returns `Found(value, start, end, quality)` spans, quality 0..1 saying how sure
the parse is. Numeric dates are read here (the day/month order decided per date: a part
over 12 settles it, else day first as most of the world writes it); dates with month names
in any of the corpus' languages go to dateparser; amounts and their currency to price-parser;
phone numbers to phonenumbers.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import regex

DATE_LANGUAGES = ["en", "de", "fr", "nl", "es", "it", "pt", "ms"]


@dataclass
class Found:
    value: Any
    start: int
    end: int
    quality: float = 1.0


# --- dates ---------------------------------------------------------------------------------

_NUMERIC_DATE = re.compile(
    r"(?<![\d/.\-])(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:(?![\d/\-])|(?=\d{1,2}:\d\d))"
    r"|(?<![\d/.\-])(\d{1,2})([-/.])(\d{1,2})\5(\d{4}|\d{2})"
    r"(?:(?![\d/\-]|\.\d)|(?=\d{1,2}:\d\d))")
# what OCR makes of a date, tried only when a text has no well-formed date: one glued to a
# number before it ("#19-18/03/2018"), with a separator lost ("2703/2018", "05 02-18") or
# misread ("05~05-17"), or printed without separators ("20180428/191204", "25032018 13:11")
_DAY, _MONTH = r"(0[1-9]|[12]\d|3[01])", r"(0[1-9]|1[0-2])"
_LOOSE_DATES = (
    (re.compile(r"(?<!\d)(\d{1,2})([/.])(\d{1,2})\2(\d{4})(?:(?!\d)|(?=\d{1,2}:\d\d))"),
     (4, 3, 1), 0.7),
    (re.compile(r"(?<![\d/.\-])(\d{2})(\d{2})[/.-](20\d\d)(?!\d)"), (3, 2, 1), 0.5),
    (re.compile(r"(?<![\d/.\-])(\d\d)(?: |\s*~\s*)(\d\d)[-/](\d{4}|\d\d)(?![\d/.\-])"),
     (3, 2, 1), 0.5),
    (re.compile(r"(?<![\d/.\-])(\d\d)[-/](\d\d)\s*~\s*(\d{4}|\d\d)(?![\d/.\-])"),
     (3, 2, 1), 0.5),
    (re.compile(rf"(?<![\d.,\-])(20\d\d){_MONTH}{_DAY}(?![\d.,\-])"), (1, 2, 3), 0.4),
    (re.compile(rf"(?<![\d.,\-]){_DAY}{_MONTH}(20\d\d)(?![\d.,\-])"), (3, 2, 1), 0.4),
)
_MONTHS = (r"jan(?:uary|vier|uar|uari|eiro)?|feb(?:ruary|ruar|ruari|rero)?|f[ée]v(?:rier)?|"
           r"m[aä]r(?:ch|s|z|t|zo)?|apr(?:il|ile)?|avr(?:il)?|abr(?:il)?|ma[iy]|mei|mai|mayo|"
           r"jun(?:e|i|io|ho)?|juin|jul(?:y|i|io|ho)?|juil(?:let)?|aug(?:ust|ustus)?|"
           r"ao[uû]t|ago(?:sto)?|sep(?:t|tember|tembre|tiembre|tembro)?|set(?:embro)?|"
           r"o[ck]t(?:ober|obre|ubre)?|nov(?:ember|embre|iembre|embro)?|"
           r"d[eé][cz](?:ember|embre|iembre|embro)?|okt(?:ober)?|mrt|januar|februar|m[äa]rz|"
           r"dis(?:ember)?|ogos(?:ul)?")


@lru_cache(maxsize=1)
def _word_date() -> regex.Pattern[str]:
    import regex

    return regex.compile(
        rf"(?i)(?<![\w])(?:(\d{{1,2}})(?:st|nd|rd|th|er)?\.?(?:\s*|\s*[-/]\s*)(?:de\s+)?"
        rf"({_MONTHS})\.?,?(?:\s*|\s*[-/]\s*)(?:de\s+)?(\d{{4}}|'?\d{{2}})"
        rf"|({_MONTHS})\.?(?:\s+|\s*[-/]\s*)(\d{{1,2}})(?:st|nd|rd|th)?\s*,?\s*"
        rf"(\d{{4}}))(?![\w])")


def _year(text: str) -> int:
    y = int(text.lstrip("'"))
    if y < 100:
        y += 2000 if y < 70 else 1900
    return y


def _make_date(y: int, m: int, d: int) -> dt.date | None:
    try:
        if 1900 <= y <= 2100:
            return dt.date(y, m, d)
    except ValueError:
        pass
    return None


@lru_cache(maxsize=1)
def _date_parser():
    from dateparser.date import DateDataParser

    return DateDataParser(languages=DATE_LANGUAGES,
                          settings={"PREFER_DAY_OF_MONTH": "first",
                                    "REQUIRE_PARTS": ["day", "month", "year"]})


def warm_up() -> None:
    """Load dateparser's language data once (seconds) so the first job does not pay it."""
    parse_word_date("3 August 2014")
    parse_word_date("7. Mai 2014")


@lru_cache(maxsize=4096)
def parse_word_date(text: str) -> dt.date | None:
    try:
        data = _date_parser().get_date_data(text)
    except Exception:  # noqa: BLE001 - dateparser raises a zoo of errors on odd input
        return None
    return data.date_obj.date() if data and data.date_obj else None


def find_dates(text: str, month_first: bool = False) -> list[Found]:
    out: list[Found] = []
    for m in _NUMERIC_DATE.finditer(text):
        if m.group(1):
            date = _make_date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            quality = 1.0
        else:
            a, b, y = int(m.group(4)), int(m.group(6)), _year(m.group(7))
            if a > 12 >= b:
                date, quality = _make_date(y, b, a), 0.95
            elif b > 12 >= a:
                date, quality = _make_date(y, a, b), 0.95
            elif month_first:
                date, quality = _make_date(y, a, b), 0.8
            else:
                date, quality = _make_date(y, b, a), 0.8
            if len(m.group(7)) == 2:
                quality -= 0.1
        if date:
            out.append(Found(date.isoformat(), m.start(), m.end(), quality))
    if not out:
        for pattern, (yi, mi, di), quality in _LOOSE_DATES:
            for m in pattern.finditer(text):
                day, month, year = int(m.group(di)), int(m.group(mi)), _year(m.group(yi))
                date = _make_date(year, month, day) if not month_first else \
                    _make_date(year, day, month) or _make_date(year, month, day)
                if date:
                    out.append(Found(date.isoformat(), m.start(), m.end(), quality))
            if out:
                break
    for w in _word_date().finditer(text):
        if any(f.start <= w.start() < f.end for f in out):
            continue
        date = parse_word_date(w.group(0))
        if date and 1900 <= date.year <= 2100:
            out.append(Found(date.isoformat(), w.start(), w.end(), 1.0))
    out.sort(key=lambda f: f.start)
    return out


_TIME = re.compile(r"(?<![\d:])([01]?\d|2[0-3])[:.h]([0-5]\d)(?::([0-5]\d))?\s*([AaPp]\.?[Mm]\.?)?"
                   r"(?![\d])")


def find_times(text: str) -> list[Found]:
    out = []
    for m in _TIME.finditer(text):
        h, mi = int(m.group(1)), int(m.group(2))
        ampm = (m.group(4) or "").lower().replace(".", "")
        if ampm == "pm" and h < 12:
            h += 12
        elif ampm == "am" and h == 12:
            h = 0
        value = f"{h:02d}:{mi:02d}" + (f":{m.group(3)}" if m.group(3) else "")
        out.append(Found(value, m.start(), m.end(), 0.9 if m.group(0)[2:3] == ":" else 0.7))
    return out


# --- amounts and currency ------------------------------------------------------------------

CURRENCY_SYMBOLS = {"$": "USD", "US$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR",
                    "RS": "INR", "RS.": "INR", "INR": "INR", "RM": "MYR", "MYR": "MYR",
                    "EUR": "EUR", "USD": "USD", "GBP": "GBP", "CHF": "CHF", "S$": "SGD",
                    "SGD": "SGD", "A$": "AUD", "AUD": "AUD", "C$": "CAD", "CAD": "CAD",
                    "HK$": "HKD", "HKD": "HKD", "₩": "KRW", "R$": "BRL", "ZAR": "ZAR",
                    "SEK": "SEK", "NOK": "NOK", "DKK": "DKK", "PLN": "PLN", "CZK": "CZK",
                    "JPY": "JPY", "CNY": "CNY", "RMB": "CNY", "IDR": "IDR", "RP": "IDR",
                    "PHP": "PHP", "₱": "PHP", "THB": "THB", "฿": "THB", "MXN": "MXN",
                    "EUROS": "EUR", "EURO": "EUR", "DOLLARS": "USD", "ZŁ": "PLN", "KČ": "CZK"}
# Letter codes are bounded by letters, not by word boundaries: receipts glue them to the
# number ("RM8.35", "USD12.50"), which a `\b` would refuse.
_CUR_PATTERN = (r"(?:US\$|S\$|A\$|C\$|HK\$|R\$|[$€£¥₹₩₱฿]|"
                r"(?<![A-Za-z])(?:RM|Rs\.?|INR|MYR|EUR|USD|GBP|CHF|SGD|AUD|CAD|HKD|JPY|CNY|RMB)"
                r"(?![A-Za-z]))")
# OCR reads a zero as O or C inside a price ("RMO.47", "-RMC.02", "15.0C"): the same-length
# repair below turns those back into 0, so offsets into the text stay valid.
_OCR_ZERO = re.compile(r"(?:(?<=RM)|(?<=[$\d]))[OoC](?=[.,]\d)|(?<=[.,])[Oo](?=\d)|"
                       r"(?<=\d[.,]\d)[OoC](?![A-Za-z0-9])|(?<=\d[.,])[Oo]{2}(?![A-Za-z0-9])")


@lru_cache(maxsize=1)
def _amount() -> regex.Pattern[str]:
    import regex

    return regex.compile(
        rf"(?<![\w.,/:-])(?P<neg>-\s?)?(?P<cur1>{_CUR_PATTERN})?\s?(?P<neg2>-\s?)?"
        r"(?P<num>\d{1,3}(?:[,.\s'’]\d{3})+(?:[.,]\d{1,2})?|\d+[.,]\d{1,2}|\d+)"
        rf"(?:\s?(?P<cur2>{_CUR_PATTERN}))?(?![\w/:%]|[.,]\d)")


_SPACED_DECIMAL = re.compile(r"^\s*(RM|\$|€|£)?\s*(\d{1,6}) (\d{2})\s*$")


def parse_number(text: str) -> Decimal | None:
    from price_parser import Price

    price = Price.fromstring(text)
    return price.amount if price.amount is not None else None


def find_amounts(text: str, decimals_only: bool = False) -> list[Found]:
    """Money-looking numbers with their currency (value = (Decimal, ISO code or None))."""
    from price_parser import Price

    out = []
    text = _OCR_ZERO.sub(lambda m: "0" * len(m.group(0)), text)
    spaced = _SPACED_DECIMAL.match(text)
    if spaced:  # OCR read "10.00" as "10 00"
        amount = Decimal(f"{spaced.group(2)}.{spaced.group(3)}")
        code = CURRENCY_SYMBOLS.get((spaced.group(1) or "").upper())
        return [Found((amount, code), spaced.start(2), spaced.end(3), 0.8)]
    for m in _amount().finditer(text):
        num = m.group("num")
        has_decimals = bool(re.search(r"[.,]\d{1,2}$", num)) and not re.fullmatch(
            r"\d{1,3}[.,]\d{3}", num)
        cur = m.group("cur1") or m.group("cur2")
        if decimals_only and not has_decimals and not cur:
            continue
        price = Price.fromstring(num, decimal_separator=_decimal_separator(num))
        if price.amount is None:
            continue
        amount = price.amount
        if m.group("neg") or m.group("neg2"):
            amount = -amount
        code = CURRENCY_SYMBOLS.get(cur.upper()) if cur else None
        quality = 1.0 if has_decimals else 0.6
        if cur:
            quality = min(1.0, quality + 0.2)
        out.append(Found((amount, code), m.start("num") if not cur else m.start(), m.end(),
                         quality))
    return out


def _decimal_separator(num: str) -> str | None:
    if re.search(r",\d{1,2}$", num):
        return ","
    if re.search(r"\.\d{1,2}$", num):
        return "."
    return None


def find_currencies(text: str) -> list[Found]:
    out = []
    for m in re.finditer(rf"{_CUR_PATTERN}|\b(?:euros?|dollars?)\b", text, re.IGNORECASE):
        key = m.group(0).upper()
        code = CURRENCY_SYMBOLS.get(key) or CURRENCY_SYMBOLS.get(key.rstrip("S"))
        if code:
            out.append(Found(code, m.start(), m.end(), 1.0 if len(key) == 3 else 0.8))
    return out


# --- identifiers and contact data ----------------------------------------------------------

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
_URL = re.compile(r"(?i)\b(?:https?://|www\.)[^\s,;]+|\b[\w-]+(?:\.[\w-]+)*\.(?:com|net|org|de|fr|"
                  r"nl|co\.uk|io|my|in|es|it|eu)(?:/[^\s,;]*)?\b")
_PERCENT = re.compile(r"(?<![\d.,])(\d{1,3}(?:[.,]\d{1,3})?)\s?%")
_IBAN = re.compile(r"\b([A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){2,7}(?:\s?[A-Z0-9]{1,4})?)\b")
_BIC = re.compile(r"\b([A-Z]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?)\b")
_VAT = re.compile(r"\b((?:AT|BE|BG|CY|CZ|DE|DK|EE|EL|ES|FI|FR|GB|HR|HU|IE|IT|LT|LU|LV|MT|NL|PL|PT|"
                  r"RO|SE|SI|SK|CH|NO)\s?[0-9A-Z](?:[\s.]?[0-9A-Z]){7,13})\b")
_IDENT = re.compile(r"#?\s?[A-Z0-9][\w/.\-]*\d[\w/.\-]*|\d[\w/.\-]*", re.IGNORECASE)


def iban_checks(text: str) -> bool:
    s = text.replace(" ", "")
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{8,30}", s):
        return False
    digits = "".join(str(int(c, 36)) for c in s[4:] + s[:4])
    return int(digits) % 97 == 1


def find_emails(text: str) -> list[Found]:
    return [Found(m.group(0).rstrip("."), m.start(), m.end()) for m in _EMAIL.finditer(text)]


def find_urls(text: str) -> list[Found]:
    return [Found(m.group(0).rstrip(".)"), m.start(), m.end(), 0.9) for m in _URL.finditer(text)
            if "@" not in text[max(0, m.start() - 1):m.start()]]


def find_percents(text: str) -> list[Found]:
    out = []
    for m in _PERCENT.finditer(text):
        try:
            out.append(Found(Decimal(m.group(1).replace(",", ".")), m.start(), m.end()))
        except InvalidOperation:
            continue
    return out


def find_ibans(text: str) -> list[Found]:
    """IBANs however the groups are spaced: the longest prefix that passes the mod-97 check,
    else the 4-character-group reading at a lower quality."""
    out = []
    for m in re.finditer(r"\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]){10,32}", text):
        raw = m.group(0)
        cut = [i for i in range(len(raw), 13, -1) if i == len(raw) or raw[i] == " " or
               raw[i - 1] != " "]
        for end in cut:
            if iban_checks(raw[:end]):
                out.append(Found(raw[:end].replace(" ", ""), m.start(), m.start() + end, 1.0))
                break
    if out:
        return out
    return [Found(m.group(1).replace(" ", ""), m.start(), m.end(), 0.5)
            for m in _IBAN.finditer(text)]


def find_bics(text: str) -> list[Found]:
    out = []
    for m in _BIC.finditer(text):
        code = m.group(1)
        if code.isalpha() and len(code) == 8 and code[4:6] not in _COUNTRIES:
            continue
        out.append(Found(code, m.start(), m.end(), 0.9 if code[4:6] in _COUNTRIES else 0.5))
    return out


_COUNTRIES = set("AT BE BG CY CZ DE DK EE ES FI FR GB GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI "
                 "SK CH NO US CA MY SG IN HK CN JP AU NZ BR MX ZA".split())


def find_tax_ids(text: str) -> list[Found]:
    out = [Found(m.group(1), m.start(), m.end(), 0.9) for m in _VAT.finditer(text)
           if sum(c.isdigit() for c in m.group(1)) >= 6]
    return out


def find_identifiers(text: str) -> list[Found]:
    """A token that has at least one digit (invoice numbers, account numbers...)."""
    out = []
    for m in _IDENT.finditer(text):
        value = m.group(0).strip().strip(".:,;")
        if not value or not any(c.isdigit() for c in value):
            continue
        out.append(Found(value, m.start(), m.start() + len(m.group(0).rstrip(".:,;")),
                         0.9 if len(value) >= 3 else 0.5))
    return out


def find_phones(text: str, region: str | None = None) -> list[Found]:
    import phonenumbers

    out = []
    for reg in ([region] if region else []) + ["US"]:
        try:
            for match in phonenumbers.PhoneNumberMatcher(
                    text, reg, leniency=phonenumbers.Leniency.POSSIBLE):
                out.append(Found(match.raw_string.strip(), match.start, match.end, 0.9))
        except Exception:  # noqa: BLE001
            continue
        if out:
            return out
    for m in re.finditer(r"(?<!\w)(\+?\(?\d[\d\s()./-]{6,}\d)", text):
        digits = re.sub(r"\D", "", m.group(1))
        if 7 <= len(digits) <= 15:
            out.append(Found(m.group(1).strip(), m.start(1), m.end(1), 0.6))
    return out
