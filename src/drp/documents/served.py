"""The hook to manual mode's store: the documents served during the condition (Lampiran F).

Manual mode (``drp.adapters.manual_store``) keeps the declarations served while systems were
down; the berita acara lists them. This module is the only place that knows how to ask, so that
connecting (or replacing) the store is one function. When the store cannot be read, the answer is
"unknown" (None) with the reason, and the document says that no served document is recorded —
it never invents one.

Each served document is a mapping with (all optional except the number):
``registration_number``, ``doc_type``, ``office``, ``submitter``, ``received_at`` (datetime),
``status``, ``evidence_sha256`` (digest of the original file kept as evidence).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from typing import Any

from drp.adapters import manual_store
from drp.errors import DrpError

_ALIASES = {
    "registration_number": ("registration_number", "nomor_pendaftaran", "number"),
    "doc_type": ("doc_type", "document_type", "jenis"),
    "office": ("office", "kantor", "office_code"),
    "submitter": ("submitter", "pengaju", "npwp"),
    "received_at": ("received_at", "submitted_at", "registered_at"),
    "status": ("status", "outcome"),
    "evidence_sha256": ("evidence_sha256", "original_sha256", "sha256", "file_sha256"),
}


def normalise(item: Any) -> dict[str, Any]:
    """One served document in the shape the berita acara prints (see the module docstring)."""
    if is_dataclass(item) and not isinstance(item, type):
        data: Mapping[str, Any] = asdict(item)
    elif isinstance(item, Mapping):
        data = item
    else:
        data = getattr(item, "__dict__", {})
    out: dict[str, Any] = {}
    for key, names in _ALIASES.items():
        out[key] = next((data[n] for n in names if data.get(n) is not None), None)
    return out


def served_documents(
    ops_dsn: str | None, incident_id: str
) -> tuple[list[dict[str, Any]] | None, str]:
    """``(documents, source)``: the store's answer, or ``(None, why not)``."""
    if not ops_dsn:
        return None, "ops-db tidak dikonfigurasi (DRP_OPS_DSN)"
    try:
        found = manual_store.served_documents(ops_dsn, incident_id)
    except DrpError as exc:
        return None, f"penyimpanan mode manual tidak dapat dibaca: {exc}"
    return [normalise(item) for item in found], "drp.adapters.manual_store"
