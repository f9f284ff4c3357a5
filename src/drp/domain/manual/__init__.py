"""Manual mode (Pasal 8–11 PER-19/BC/2023): the rules, pure Python, no I/O.

While SKP is down, declarations arrive as spreadsheets (Pasal 8(2)); the supporting application
numbers them (Pasal 8(4)(a), Lampiran D), validates their filling and their import/export
requirements by HS code (Pasal 8(4)(b, c)), and they are synchronised back into SKP within 30
days of recovery (Pasal 11). This package decides all of that from plain values; reading
spreadsheets and storing numbers is the adapters' job (``drp.adapters.spreadsheets``,
``drp.adapters.manual_store``).

Modules: :mod:`.workbook` (the neutral cell model and located problems), :mod:`.codes` (NPWP,
HS, country, currency, port and office checks), :mod:`.fields` (the PIB/PEB templates),
:mod:`.validation` (a workbook to declarations or problems), :mod:`.requirements` (prohibited and
restricted goods by HS code), :mod:`.numbering` (registration numbers), :mod:`.worklist` (the
work queue) and :mod:`.deadline` (the 30-day resync deadline).
"""

from __future__ import annotations

from drp.domain.manual import (  # noqa: F401  (imported so the layering test sees them all)
    codes,
    deadline,
    fields,
    numbering,
    requirements,
    validation,
    workbook,
    worklist,
)
