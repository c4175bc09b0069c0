"""The guard layer: scan policy, store and key store, encrypted evidence, identities, human
review, the report gate, retention and the keyed, checkpointed audit log. Humans decide;
data dies on time; nothing is reported without a recorded human confirmation."""

from .._scope import LegalBasis, ScanDecision, ScanPolicy, load_legal_bases
from ._audit import AuditVerification, Checkpoint, CheckpointSigner, load_public_key
from ._cases import (
    CONFIRM_REASONS,
    DISMISS_REASONS,
    MAX_RETENTION_DAYS,
    ROLES,
    Guard,
    Report,
    export_report,
    is_genuine,
    rotate_master_key,
    shown,
)
from ._crypto import (
    AUDIT_KEY_FILE_ENV,
    MASTER_KEY_ENV,
    MASTER_KEY_FILE_ENV,
    AuditKey,
    Keys,
    MasterKeyError,
    MasterKeySource,
    write_secret_file,
)
from ._identity import AccountInfo, Enrolment, Principal, canonical_id
from ._keystore import KEY_STORE_ENV, KeyStore, LocalKeyStore, MemoryKeyStore
from ._redress import (
    close_year,
    complaint_queue,
    decide_complaint,
    file_complaint,
    re_review,
    record_scan,
    report_markdown,
    transparency_report,
    user_notice,
    view_complaint_evidence,
)
from ._store import Store, StoreError

__all__ = [
    "AUDIT_KEY_FILE_ENV",
    "CONFIRM_REASONS",
    "DISMISS_REASONS",
    "KEY_STORE_ENV",
    "MASTER_KEY_ENV",
    "MASTER_KEY_FILE_ENV",
    "MAX_RETENTION_DAYS",
    "ROLES",
    "AccountInfo",
    "AuditKey",
    "AuditVerification",
    "Checkpoint",
    "CheckpointSigner",
    "Enrolment",
    "Guard",
    "KeyStore",
    "Keys",
    "LegalBasis",
    "LocalKeyStore",
    "MasterKeyError",
    "MasterKeySource",
    "MemoryKeyStore",
    "Principal",
    "Report",
    "ScanDecision",
    "ScanPolicy",
    "Store",
    "StoreError",
    "canonical_id",
    "close_year",
    "complaint_queue",
    "decide_complaint",
    "export_report",
    "file_complaint",
    "is_genuine",
    "load_legal_bases",
    "load_public_key",
    "re_review",
    "record_scan",
    "report_markdown",
    "rotate_master_key",
    "shown",
    "transparency_report",
    "user_notice",
    "view_complaint_evidence",
    "write_secret_file",
]
