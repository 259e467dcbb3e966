"""Fail-closed checks made before anything is decided; each failure is a RejectReason.

- DICOMDIR (its file references would not match de-identified outputs): UNSUPPORTED_SOP_CLASS
- encapsulated documents and models, raw data, private SOP Classes (:data:`UNSAFE_SOP_CLASSES`),
  unless the policy's ``allow_sop_classes`` lists them: UNSUPPORTED_SOP_CLASS
- Recognizable Visual Features YES, unless the policy allows it: RECOGNIZABLE_VISUAL_FEATURES
- an SR document (a top-level Content Sequence with items) whose content the policy does not
  clean, or holds what Clean Structured Content cannot clean, unless the policy's
  ``allow_sop_classes`` lists its SOP Class: UNSAFE_STRUCTURED_CONTENT (:func:`check_content`)
- sizes over the caller's :class:`deid.limits.Limits`: SIZE_LIMIT
- no SOP Class or SOP Instance UID: MISSING_UID
- a transfer syntax the DICOM library cannot write: UNSUPPORTED_TRANSFER_SYNTAX
- pixel data referenced by URL (JPIP) while the policy looks at pixels:
  UNSUPPORTED_TRANSFER_SYNTAX (a syntax no decoder reads, such as video, is refused by the
  pixel pass itself when the object needs it: :func:`deid.burnedin.run_pixel_pass`)

:func:`burned_in_risk` says which objects are at risk of burned-in text; the pixel pass
(:mod:`deid.burnedin`) runs on them, and rejects them (BURNED_IN_TEXT) when no OCR engine is
installed.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.uid import UID, MediaStorageDirectoryStorage

from deid.codes import ActionCode, PixelMode, ProfileOption, RejectReason
from deid.errors import RejectedError
from deid.markers import transfer_syntax
from deid.policy import Policy
from deid.structured import CONTENT_SEQUENCE, has_content, uncleanable_content
from deid.values import get_strings, get_value

#: Modalities whose images usually carry burned-in text (annotations, screens, banners).
RISKY_MODALITIES = frozenset(
    {"US", "IVUS", "SC", "XA", "RF", "DX", "CR", "MG", "IO", "PX", "OT", "ES", "XC", "GM", "OP"}
)
#: Storage SOP Classes made of captured screens or ultrasound frames, whatever the modality.
RISKY_SOP_CLASS_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture (and its multi-frame variants)
    "1.2.840.10008.5.1.4.1.1.6.",  # Ultrasound (retired and current)
    "1.2.840.10008.5.1.4.1.1.3.",  # Ultrasound Multi-frame
    "1.2.840.10008.5.1.4.1.1.12.",  # X-Ray Angiographic / Radio Fluoroscopic
    "1.2.840.10008.5.1.4.1.1.77.1.",  # VL images (endoscopic, photographic, ...)
)
#: Pixel Data, Float Pixel Data, Double Float Pixel Data.
PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
#: Pixel Data Provider URL: the pixel data of the JPIP Referenced syntaxes lives there.
PIXEL_DATA_PROVIDER_URL = 0x00287FE0


def has_pixels(ds: Dataset) -> bool:
    """Whether ``ds`` holds pixel data of any kind."""
    return any(tag in ds for tag in PIXEL_TAGS)


def image_type(ds: Dataset) -> list[str]:
    """Image Type's values, stripped and upper case, read without converting the element."""
    values = get_strings(ds, "ImageType") or []
    if values == [""]:
        return []  # (one empty value: pydicom's "", read as no value)
    return [v.strip().upper() for v in values]


#: SOP Classes whose payload deid cannot make safe (a PDF, a CDA document, a 3D model or raw
#: vendor data can hold anything): rejected unless the policy's ``allow_sop_classes`` lists them.
UNSAFE_SOP_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.104.1": "Encapsulated PDF",
    "1.2.840.10008.5.1.4.1.1.104.2": "Encapsulated CDA",
    "1.2.840.10008.5.1.4.1.1.104.3": "Encapsulated STL",
    "1.2.840.10008.5.1.4.1.1.104.4": "Encapsulated OBJ",
    "1.2.840.10008.5.1.4.1.1.104.5": "Encapsulated MTL",
    "1.2.840.10008.5.1.4.1.1.66": "Raw Data",
}
_STANDARD_ROOT = "1.2.840.10008."


def check(ds: Dataset, policy: Policy) -> None:
    """Raise :class:`RejectedError` if ``ds`` must not be processed under ``policy``."""
    check_structure(ds)
    sop_class = str(get_value(ds, "SOPClassUID") or "").strip()
    if sop_class not in policy.allow_sop_classes:
        unsafe = UNSAFE_SOP_CLASSES.get(sop_class)
        if unsafe is not None:
            raise RejectedError(
                RejectReason.UNSUPPORTED_SOP_CLASS,
                f"{unsafe}: its payload cannot be de-identified (allow_sop_classes to accept)",
            )
        if not sop_class.startswith(_STANDARD_ROOT):
            raise RejectedError(
                RejectReason.UNSUPPORTED_SOP_CLASS,
                "a private SOP Class: its content is unknown (allow_sop_classes to accept)",
            )
    flag = str(get_value(ds, "RecognizableVisualFeatures") or "").strip().upper()
    if flag == "YES" and not policy.allow_recognizable_visual_features:
        raise RejectedError(
            RejectReason.RECOGNIZABLE_VISUAL_FEATURES,
            "Recognizable Visual Features YES: faces cannot be cleaned by deid",
        )
    if sop_class not in policy.allow_sop_classes:
        check_content(ds, policy)
    if PIXEL_DATA_PROVIDER_URL in ds and policy.clean_pixel_data is not PixelMode.NEVER:
        raise RejectedError(
            RejectReason.UNSUPPORTED_TRANSFER_SYNTAX,
            "pixel data referenced by URL (JPIP): the pixel pass cannot check it "
            '(clean_pixel_data = "never" to release)',
        )


#: Overrides on Content Sequence that release none of the content: removed or emptied.
_CONTENT_GONE = frozenset({ActionCode.X, ActionCode.Z})


def check_content(ds: Dataset, policy: Policy) -> None:
    """The structured-content gate (PS3.15 E.3.4): an SR document's content tree leaves only
    when the policy cleans it with Clean Structured Content and every item can be cleaned.

    - a policy override on Content Sequence other than X or Z, or no Clean Structured
      Content: the tree would leave without Table E.3.4-1 (under the Basic Profile's D its
      codes, numbers and local code meanings are kept; E.3.4 Note 2 warns against exactly
      this);
    - with the option: :func:`deid.structured.uncleanable_content`.

    Raises :class:`RejectedError` (UNSAFE_STRUCTURED_CONTENT); the caller skips this gate for
    the SOP Classes the policy's ``allow_sop_classes`` lists.
    """
    if not has_content(ds):
        return
    override = policy.overrides.get(CONTENT_SEQUENCE)
    if override in _CONTENT_GONE:
        return
    if override is not None:
        raise RejectedError(
            RejectReason.UNSAFE_STRUCTURED_CONTENT,
            f"SR content under a policy override {override.value} on Content Sequence is not "
            "cleaned by Table E.3.4-1 (allow_sop_classes to accept)",
        )
    if ProfileOption.CLEAN_STRUCTURED_CONTENT not in policy.options:
        raise RejectedError(
            RejectReason.UNSAFE_STRUCTURED_CONTENT,
            "SR content is cleaned only under clean_structured_content (PS3.15 E.3.4): the "
            "Basic Profile's dummy Content Sequence keeps its codes and numbers "
            "(allow_sop_classes to accept)",
        )
    where = uncleanable_content(ds, policy.options)
    if where:
        raise RejectedError(
            RejectReason.UNSAFE_STRUCTURED_CONTENT,
            f"SR content cannot be cleaned: {where} (allow_sop_classes to accept)",
        )


def check_structure(ds: Dataset) -> None:
    """The checks that do not depend on the policy: what can be planned at all."""
    try:
        sop_class = str(get_value(ds, "SOPClassUID") or "").strip()
        sop_instance = str(get_value(ds, "SOPInstanceUID") or "").strip()
    except Exception:
        raise RejectedError(
            RejectReason.INVALID_DATASET, "SOP Class or Instance UID unreadable"
        ) from None
    meta = getattr(ds, "file_meta", None)
    meta_class = str(get_value(meta, "MediaStorageSOPClassUID") or "") if meta is not None else ""
    if MediaStorageDirectoryStorage in (sop_class, meta_class.strip()):
        raise RejectedError(
            RejectReason.UNSUPPORTED_SOP_CLASS,
            "DICOMDIR: its file references would not match de-identified outputs",
        )
    if not sop_class or not sop_instance:
        raise RejectedError(
            RejectReason.MISSING_UID, "SOP Class UID and SOP Instance UID are required"
        )
    if not UID(transfer_syntax(ds)).is_transfer_syntax:
        raise RejectedError(
            RejectReason.UNSUPPORTED_TRANSFER_SYNTAX,
            "transfer syntax unknown to the DICOM library: cannot be written",
        )


def burned_in_risk(ds: Dataset, mode: PixelMode) -> str:
    """Why the pixel data may hold burned-in text under ``mode``; '' when it need not be cleaned.

    The reason names attributes and defined terms only, never a value of the patient's.
    """
    if mode is PixelMode.NEVER or not has_pixels(ds):
        return ""
    if mode is PixelMode.ALWAYS:
        return "clean_pixel_data = always"
    if str(get_value(ds, "BurnedInAnnotation") or "").strip().upper() == "YES":
        return "Burned In Annotation YES"
    modality = str(get_value(ds, "Modality") or "").strip().upper()
    if modality in RISKY_MODALITIES:
        return f"modality {modality}" if modality.isalpha() and len(modality) <= 4 else "modality"
    sop_class = str(get_value(ds, "SOPClassUID") or "").strip()
    if sop_class.startswith(RISKY_SOP_CLASS_PREFIXES):
        return "a SOP Class of captured or annotated images"
    if image_type(ds)[1:2] == ["SECONDARY"]:
        return "Image Type SECONDARY (a derived or captured image)"
    return ""
