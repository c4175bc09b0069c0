"""The guard layer: scan policy, store, encrypted evidence, human review, report gate,
retention and the hash-chained audit log. Humans decide; data dies on time."""

from .._scope import LegalBasis, ScanDecision, ScanPolicy, load_legal_bases
from ._cases import ROLES, Actor, Guard, Report, export_report
from ._crypto import MASTER_KEY_ENV, MASTER_KEY_FILE_ENV, Keys, MasterKeyError
from ._redress import (
    close_year,
    decide_complaint,
    file_complaint,
    re_review,
    record_scan,
    transparency_report,
    user_notice,
)
from ._store import Store, StoreError

__all__ = [
    "MASTER_KEY_ENV",
    "MASTER_KEY_FILE_ENV",
    "ROLES",
    "Actor",
    "Guard",
    "Keys",
    "LegalBasis",
    "MasterKeyError",
    "Report",
    "ScanDecision",
    "ScanPolicy",
    "Store",
    "StoreError",
    "close_year",
    "decide_complaint",
    "export_report",
    "file_complaint",
    "load_legal_bases",
    "re_review",
    "record_scan",
    "transparency_report",
    "user_notice",
]
