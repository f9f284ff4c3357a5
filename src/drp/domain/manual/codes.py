"""Checks of the codes a declaration carries: NPWP, NIB, HS, office, country, currency, port.

Each check returns ``None`` when the value is good, or a sentence saying what is wrong; the
caller (:mod:`.validation`) puts the sentence at the cell. Values are normalised first
(``normal_*``) so that ``01.312.166.0-091.000`` and ``013121660091000`` are the same NPWP.
"""

from __future__ import annotations

import re

# ISO 3166-1 alpha-2 (the list the tz database ships, iso3166.tab).
COUNTRIES = frozenset(
    """AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR
    BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC
    EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK
    HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB
    LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ
    NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU
    RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN
    TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW""".split()  # noqa: SIM905
)

# ISO 4217 currencies in use for trade (the NDPBM list customs publishes is drawn from these).
CURRENCIES = frozenset(
    """AED AUD BDT BHD BND BRL CAD CHF CNY CZK DKK EGP EUR GBP HKD IDR INR JPY KRW KWD LAK LKR
    MMK MXN MYR NOK NZD PGK PHP PKR PLN QAR RUB SAR SEK SGD THB TRY TWD USD VND ZAR""".split()  # noqa: SIM905
)

# UN/ECE Recommendation 20 units customs forms commonly use.
UNITS = frozenset(
    """KGM GRM TNE LTR MLT MTR MTK MTQ PCE SET PR DZN CT BX PK BG RO NPR NAR KWH C62 EA
    UNT""".split()  # noqa: SIM905
)

_OFFICE = re.compile(r"^\d{6}$")
_PORT = re.compile(r"^([A-Z]{2})([A-Z2-9]{3})$")
_NOMOR_AJU = re.compile(r"^[A-Z0-9]{6,32}$")
_PERMIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9./ -]{2,63}$")


def digits_only(text: str) -> str:
    """The text without the dots, dashes and spaces people type between digits."""
    return re.sub(r"[\s.\-/]", "", text)


def luhn_ok(number: str) -> bool:
    """The Luhn (mod 10) check over a string of digits, the last one being the check digit."""
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char)
        if position % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def normal_npwp(text: str) -> str:
    return digits_only(text.strip())


def check_npwp(text: str) -> str | None:
    """NPWP: 15 digits whose 9th is a Luhn check over the first nine (ST.sss.sss.C-OOO.BBB),
    or the 16-digit NPWP (the NIK for persons) used since 2024, which carries no check digit."""
    value = normal_npwp(text)
    if not value.isdigit():
        return f"NPWP {text!r} holds characters other than digits, dots and dashes"
    if len(value) == 16:
        return None
    if len(value) != 15:
        return f"NPWP {text!r} has {len(value)} digits; an NPWP has 15 (or 16 since 2024)"
    if not luhn_ok(value[:9]):
        return f"NPWP {text!r}: its check digit (the 9th) does not match; a digit is mistyped"
    return None


def check_nib(text: str) -> str | None:
    """NIB (Nomor Induk Berusaha, the OSS business number): 13 digits."""
    value = digits_only(text.strip())
    if not value.isdigit() or len(value) != 13:
        return f"NIB {text!r} is not 13 digits"
    return None


def normal_hs(text: str) -> str:
    return digits_only(text.strip())


def check_hs(text: str) -> str | None:
    """HS code: the 8-digit BTKI 2022 subheading (``0101.21.00`` or ``01012100``), chapter
    01–97 (chapters 77 is reserved and 98–99 are national uses, not goods classifications)."""
    value = normal_hs(text)
    if not value.isdigit():
        return f"HS code {text!r} holds characters other than digits and dots"
    if len(value) != 8:
        return f"HS code {text!r} has {len(value)} digits; BTKI 2022 uses 8 (e.g. 0101.21.00)"
    chapter = int(value[:2])
    if not 1 <= chapter <= 97 or chapter == 77:
        return f"HS code {text!r}: chapter {value[:2]} does not exist (chapters 01–97, not 77)"
    return None


def check_office(text: str) -> str | None:
    """Customs office code (kode kantor): six digits, e.g. 040300 (Tanjung Priok)."""
    if not _OFFICE.match(text.strip()):
        return f"office code {text!r} is not six digits (e.g. 040300)"
    return None


def check_country(text: str) -> str | None:
    if text.strip().upper() not in COUNTRIES:
        return f"country {text!r} is not an ISO 3166 two-letter code (e.g. CN, SG, US)"
    return None


def check_currency(text: str) -> str | None:
    if text.strip().upper() not in CURRENCIES:
        return f"currency {text!r} is not one of the accepted ISO 4217 codes (e.g. USD, IDR)"
    return None


def check_unit(text: str) -> str | None:
    if text.strip().upper() not in UNITS:
        return f"unit {text!r} is not a UN/ECE Rec. 20 code on the form's list (e.g. KGM, PCE)"
    return None


def check_port(text: str) -> str | None:
    """Port: a UN/LOCODE, two letters of the country then three of the place (IDTPP)."""
    found = _PORT.match(text.strip().upper())
    if not found:
        return f"port {text!r} is not a UN/LOCODE (five characters, e.g. IDTPP, SGSIN)"
    if found.group(1) not in COUNTRIES:
        return f"port {text!r}: {found.group(1)} is not a country code"
    return None


def port_country(text: str) -> str:
    return text.strip().upper()[:2]


def check_nomor_aju(text: str) -> str | None:
    """Nomor aju (the submitter's own reference): 6–32 capital letters or digits."""
    if not _NOMOR_AJU.match(text.strip()):
        return f"nomor aju {text!r} must be 6–32 capital letters or digits, without spaces"
    return None


def check_permit(text: str) -> str | None:
    """A permit number (nomor izin): 3–64 letters, digits and . / - or spaces."""
    if not _PERMIT.match(text.strip()):
        return f"permit number {text!r} is not a permit number (3–64 letters, digits, . / -)"
    return None
