"""deid: make DICOM objects safe to leave the hospital.

Quick start::

    import deid
    key = deid.Pseudonymizer.from_file("site.key")        # written by `deid keygen`
    engine = deid.Deidentifier(policy="upload", key=key)
    result = engine.deidentify_file("in.dcm", "out.dcm")
    print(result.audit.to_json())

Every object goes through gates, a :class:`Plan` of :class:`Decision` s (PS3.15 2026c Annex E
and the policy's options), keyed pseudonyms, markers and a verification pass; an object that
cannot be made safe raises :class:`RejectedError` and nothing is written.
"""

import logging

from deid._version import __dicom_edition__, __version__
from deid.audit import AuditRecord
from deid.codes import ActionCode, AttributeType, Outcome, ProfileOption, RejectReason
from deid.engine import Deidentifier, DeidResult
from deid.errors import (
    DeidError,
    MissingDependencyError,
    PixelError,
    PolicyError,
    RejectedError,
    ResidualPhiError,
)
from deid.keys import Pseudonymizer, write_key_file
from deid.limits import Limits
from deid.plan import Decision, Plan, Rule, build_plan
from deid.policy import Policy, load_policy, named_policies

logging.getLogger("deid").addHandler(logging.NullHandler())

__all__ = [
    "ActionCode",
    "AttributeType",
    "AuditRecord",
    "Decision",
    "DeidError",
    "DeidResult",
    "Deidentifier",
    "Limits",
    "MissingDependencyError",
    "Outcome",
    "PixelError",
    "Plan",
    "Policy",
    "PolicyError",
    "ProfileOption",
    "Pseudonymizer",
    "RejectReason",
    "RejectedError",
    "ResidualPhiError",
    "Rule",
    "__dicom_edition__",
    "__version__",
    "build_plan",
    "load_policy",
    "named_policies",
    "write_key_file",
]
