"""Audit records: what happened to one object, with tags, actions and counts, never values."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from deid._version import __dicom_edition__, __version__
from deid.codes import Outcome, RejectReason


@dataclass(frozen=True)
class AuditRecord:
    """One object's outcome. ``actions`` counts decisions per action code (``D*``: pseudonyms)."""

    outcome: Outcome
    reason: RejectReason | None = None
    detail: str = ""
    sop_class_uid: str = ""
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    sop_instance_uid: str | None = None
    policy: str = ""
    key_fingerprint: str = ""
    actions: dict[str, int] = field(default_factory=dict)
    #: The pixel pass, when it looked at the object: why, engine, boxes blanked per frame
    #: (coordinates and confidences, never text), re-encoding (see :mod:`deid.burnedin`).
    pixels: dict[str, Any] | None = None
    deid_version: str = __version__
    dicom_edition: str = __dicom_edition__

    def to_dict(self, **extra: Any) -> dict[str, Any]:
        """JSON-ready mapping; ``extra`` (e.g. input/output paths) comes first."""
        body = asdict(self)
        body["outcome"] = self.outcome.value
        body["reason"] = self.reason.value if self.reason else None
        return {**extra, **body}

    def to_json(self, **extra: Any) -> str:
        return json.dumps(self.to_dict(**extra), sort_keys=False, separators=(",", ":"))
