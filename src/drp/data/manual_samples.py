"""Sample manual declarations: valid rows for the lab, the tests, the benchmark and the docs.

Everything here is made up but passes the rules (NPWPs carry a correct check digit, ports are
UN/LOCODEs, totals add up), so a test can break exactly one thing and expect exactly one
problem.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from drp.domain.manual.codes import luhn_ok
from drp.domain.manual.fields import DocType


def npwp_for(serial: int, kind: str = "01", office: str = "091", branch: str = "000") -> str:
    """A 15-digit NPWP with a correct check digit (Luhn over the first nine digits)."""
    body = f"{kind}{serial % 1_000_000:06d}"
    check = next(d for d in range(10) if luhn_ok(f"{body}{d}"))
    return f"{body[:2]}.{body[2:5]}.{body[5:8]}.{check}-{office}.{branch}"


def declaration(
    n: int,
    doc_type: DocType = DocType.PIB,
    office: str = "040300",
    *,
    items: int = 2,
    today: date | None = None,
    prefix: str = "AJU",
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ``n``-th sample declaration: its header row and its item rows (by field key)."""
    today = today or date(2026, 11, 20)
    aju = f"{prefix}{doc_type.value}{office}{n:08d}"
    lines = []
    for seri in range(1, items + 1):
        lines.append(
            {
                "nomor_aju": aju,
                "seri": seri,
                "kode_hs": "8471.30.10" if seri % 2 else "6109.10.00",
                "uraian": "Laptop" if seri % 2 else "T-shirts, cotton",
                "jumlah": Decimal(10 * seri),
                "satuan": "PCE",
                "negara": "CN" if not doc_type.is_export else "SG",
                "nilai": Decimal("1250.50") * seri,
            }
        )
    total = sum((line["nilai"] for line in lines), Decimal(0))
    header: dict[str, Any] = {
        "nomor_aju": aju,
        "kode_kantor": office,
        "npwp": npwp_for(n + 1),
        "nib": f"{9120000000000 + n:013d}",
        "nama": f"PT Contoh Niaga {n}",
        "tanggal_dokumen": today,
        "pelabuhan_muat": "CNSHA" if not doc_type.is_export else "IDTPP",
        "pelabuhan_bongkar": "IDTPP" if not doc_type.is_export else "SGSIN",
        "nomor_dokumen_angkut": f"BL{n:09d}",
        "valuta": "USD",
        "kurs": Decimal("15750.25"),
        ("nilai_fob" if doc_type.is_export else "nilai_cif"): total,
    }
    if doc_type.is_export:
        header["waktu_closing"] = datetime.combine(today, datetime.min.time()) + timedelta(
            days=1, hours=(n * 7) % 24
        )
    return header, lines


def declarations(
    count: int, doc_type: DocType = DocType.PIB, office: str = "040300", start: int = 1, **kw: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``count`` sample declarations numbered from ``start``: (header rows, item rows)."""
    headers: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    for n in range(start, start + count):
        header, lines = declaration(n, doc_type, office, **kw)
        headers.append(header)
        items.extend(lines)
    return headers, items
