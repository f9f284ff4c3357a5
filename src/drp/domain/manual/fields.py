"""The two manual-mode forms, PIB (import) and PEB (export): sheets, columns, kinds, help texts.

One definition serves both ends: the template writer lays it out (with data validation and input
help) and the validator reads a filled file against it, so a column cannot be added to one and
forgotten in the other. Column headers are Indonesian, as on the customs forms; a ``*`` after a
header marks a required column (it is ignored when headers are matched).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

HEADER_SHEET = "HEADER"
ITEMS_SHEET = "BARANG"
HELP_SHEET = "PETUNJUK"


class DocType(StrEnum):
    """PIB: Pemberitahuan Impor Barang (import declaration); PEB: Pemberitahuan Ekspor Barang
    (export declaration)."""

    PIB = "PIB"
    PEB = "PEB"

    @property
    def is_export(self) -> bool:
        return self is DocType.PEB


class Kind(StrEnum):
    TEXT = "text"
    NOMOR_AJU = "nomor_aju"
    OFFICE = "office"
    NPWP = "npwp"
    NIB = "nib"
    DATE = "date"
    DATETIME = "datetime"
    DECIMAL = "decimal"
    INTEGER = "integer"
    HS = "hs"
    COUNTRY = "country"
    CURRENCY = "currency"
    PORT = "port"
    UNIT = "unit"
    PERMIT = "permit"


@dataclass(frozen=True)
class Field:
    """One column of a form sheet."""

    key: str
    header: str
    kind: Kind
    required: bool
    help: str
    positive: bool = False  # numbers: must be > 0 (else >= 0)
    max_len: int = 200

    @property
    def label(self) -> str:
        """The header as written in the template (``*`` marks a required column)."""
        return f"{self.header} *" if self.required else self.header


def _header_fields(doc: DocType) -> tuple[Field, ...]:
    party = "Eksportir" if doc.is_export else "Importir"
    value_key, value_header = (
        ("nilai_fob", "Nilai FOB") if doc.is_export else ("nilai_cif", "Nilai CIF")
    )
    fields = [
        Field(
            "nomor_aju",
            "Nomor Aju",
            Kind.NOMOR_AJU,
            True,
            "Your own reference for this declaration: 6–32 capital letters or digits.",
        ),
        Field(
            "kode_kantor",
            "Kode Kantor",
            Kind.OFFICE,
            True,
            "The customs office the declaration is submitted to: six digits (040300).",
        ),
        Field(
            "npwp",
            "NPWP",
            Kind.NPWP,
            True,
            f"NPWP of the {party.lower()}: 15 digits (01.312.166.0-091.000) or 16 digits.",
        ),
        Field("nib", "NIB", Kind.NIB, False, "Nomor Induk Berusaha (OSS): 13 digits, if any."),
        Field("nama", f"Nama {party}", Kind.TEXT, True, f"Name of the {party.lower()}."),
        Field(
            "tanggal_dokumen",
            "Tanggal Dokumen",
            Kind.DATE,
            True,
            "Date of the declaration, as a date cell (not typed as text).",
        ),
        Field(
            "pelabuhan_muat",
            "Pelabuhan Muat",
            Kind.PORT,
            True,
            "Port of loading, UN/LOCODE (five characters, e.g. CNSHA).",
        ),
        Field(
            "pelabuhan_bongkar",
            "Pelabuhan Bongkar",
            Kind.PORT,
            True,
            "Port of unloading, UN/LOCODE (five characters, e.g. IDTPP).",
        ),
        Field(
            "nomor_dokumen_angkut",
            "Nomor Dokumen Angkut",
            Kind.TEXT,
            True,
            "Bill of lading or air waybill number.",
        ),
        Field("valuta", "Valuta", Kind.CURRENCY, True, "Currency, ISO 4217 (USD, IDR, ...)."),
        Field(
            "kurs",
            "Kurs",
            Kind.DECIMAL,
            True,
            "Exchange rate to rupiah (NDPBM) on the document date; 1 for IDR.",
            positive=True,
        ),
        Field(
            value_key,
            value_header,
            Kind.DECIMAL,
            True,
            f"Total {value_header[6:]} value in the currency: must equal the sum of the items.",
        ),
    ]
    if doc.is_export:
        fields.append(
            Field(
                "waktu_closing",
                "Waktu Closing",
                Kind.DATETIME,
                True,
                "Export closing time (date and time, WIB): the queue serves the nearest first.",
            )
        )
    return tuple(fields)


def _item_fields(doc: DocType) -> tuple[Field, ...]:
    country = (
        ("Negara Tujuan", "Destination country")
        if doc.is_export
        else ("Negara Asal", "Country of origin")
    )
    return (
        Field(
            "nomor_aju",
            "Nomor Aju",
            Kind.NOMOR_AJU,
            True,
            "The nomor aju of the declaration (HEADER sheet) this item belongs to.",
        ),
        Field(
            "seri",
            "Seri",
            Kind.INTEGER,
            True,
            "Item number within the declaration: 1, 2, ...",
            positive=True,
        ),
        Field("kode_hs", "Kode HS", Kind.HS, True, "HS code, 8 digits of BTKI 2022 (0101.21.00)."),
        Field("uraian", "Uraian Barang", Kind.TEXT, True, "Description of the goods."),
        Field("jumlah", "Jumlah", Kind.DECIMAL, True, "Quantity, more than zero.", positive=True),
        Field("satuan", "Satuan", Kind.UNIT, True, "Unit, UN/ECE Rec. 20 (KGM, PCE, ...)."),
        Field("negara", country[0], Kind.COUNTRY, True, f"{country[1]}, ISO 3166 (CN, SG)."),
        Field("nilai", "Nilai", Kind.DECIMAL, True, "Value of this item in the currency."),
        Field(
            "nomor_izin",
            "Nomor Izin",
            Kind.PERMIT,
            False,
            "Permit number, required for restricted goods (lartas).",
        ),
    )


@dataclass(frozen=True)
class Form:
    """One declaration type's layout: the header sheet's and the items sheet's columns."""

    doc_type: DocType
    header: tuple[Field, ...]
    items: tuple[Field, ...]

    @property
    def value_key(self) -> str:
        return "nilai_fob" if self.doc_type.is_export else "nilai_cif"


FORMS: dict[DocType, Form] = {
    doc: Form(doc, _header_fields(doc), _item_fields(doc)) for doc in DocType
}


def parse_doc_type(text: str) -> DocType:
    """``pib``/``PIB`` → :class:`DocType`; anything else is a ValueError naming the choices."""
    try:
        return DocType(text.strip().upper())
    except ValueError:
        raise ValueError(f"document type {text!r}: choose PIB (import) or PEB (export)") from None


def normal_header(text: str) -> str:
    """A header as matched: case, spaces and the required mark ``*`` do not matter."""
    return " ".join(text.replace("*", " ").split()).casefold()
