"""Marks of a de-identified object: PS3.15 E.1.1 and E.2, PS3.3 C.12.1 (SOP Common)."""

from __future__ import annotations

import functools
import io
from typing import cast

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from deid._version import __dicom_edition__, __version__
from deid.codes import (
    BASIC_PROFILE_CODE,
    CLEAN_PIXEL_DATA_CODE,
    DEIDENTIFYING_EQUIPMENT_CODE,
    ProfileOption,
)
from deid.policy import Policy, options_of
from deid.standard import method_codes
from deid.tags import stored
from deid.values import get_value

#: deid's own Implementation Class UID (a UUID-derived 2.25 UID, fixed for the project).
IMPLEMENTATION_CLASS_UID = "2.25.246844166776241697157244666214110953770"
IMPLEMENTATION_VERSION_NAME = f"DEID_{__version__}"[:16]
MANUFACTURER = "deid"


def _code_item(code_value: str) -> Dataset:
    concept = method_codes()[code_value]
    item = Dataset()
    item.CodeValue = concept.value
    item.CodingSchemeDesignator = concept.scheme
    item.CodeMeaning = concept.meaning
    return item


def method_code_values(policy: Policy, pixels: bool = False) -> list[str]:
    """CID 7050 codes: the profile, Clean Pixel Data when the pixel pass cleaned the object,
    then each option used in the table's column order."""
    first = [BASIC_PROFILE_CODE, CLEAN_PIXEL_DATA_CODE] if pixels else [BASIC_PROFILE_CODE]
    return [*first, *(o.code for o in options_of(policy))]


def method_text(policy: Policy, pixels: bool = False) -> list[str]:
    """De-identification Method values (LO, at most 64 characters each)."""
    values = [f"deid {__version__}; PS3.15 {__dicom_edition__} Basic Profile"[:64]]
    codes = method_code_values(policy, pixels)[1:]
    values += [method_codes()[code].meaning[:64] for code in codes]
    return values


def longitudinal_value(policy: Policy) -> str:
    if ProfileOption.RETAIN_LONG_FULL_DATES in policy.options:
        return "UNMODIFIED"
    if ProfileOption.RETAIN_LONG_MODIFIED_DATES in policy.options:
        return "MODIFIED"
    return "REMOVED"


#: What :func:`add_markers` and :func:`new_file_meta` write with fixed text: verification
#: does not search these locations (the Contributing Equipment item is added at its index).
MARKER_LOCATIONS = (
    "(0002,0012)",
    "(0002,0013)",
    "(0012,0062)",
    "(0012,0063)",
    "(0012,0064)",
    "(0028,0303)",
)


_MERGED = (
    "DeidentificationMethod",
    "DeidentificationMethodCodeSequence",
    "ContributingEquipmentSequence",
)


def add_markers(ds: Dataset, policy: Policy, *, pixels: bool = False) -> tuple[str, ...]:
    """Patient Identity Removed, method text and codes, temporal flag, contributing equipment.

    ``pixels``: the pixel pass cleaned the object, so Clean Pixel Data (113101) joins the
    method codes and Burned In Annotation becomes NO. Without it, Burned In Annotation is left
    as the plan made it.

    Returns the locations written with fixed text (for verification to leave out). Where the
    input has none of the merged attributes (the usual case), the marker elements are copied
    in as already-encoded elements, built once per policy and encoding.
    """
    implicit, little = ds.original_encoding
    if little is not False and not any(keyword in ds for keyword in _MERGED):
        for raw in _encoded_markers(_policy_key(policy), bool(implicit), pixels):
            ds[raw.tag] = raw
        return (*MARKER_LOCATIONS, "(0018,A001)[0]")
    _fill(ds, policy, pixels)
    return (*MARKER_LOCATIONS, f"(0018,A001)[{len(ds.ContributingEquipmentSequence) - 1}]")


def _equipment(policy_name: str) -> Dataset:
    equipment = Dataset()
    equipment.Manufacturer = MANUFACTURER
    equipment.ManufacturerModelName = "deid-dicom"
    equipment.SoftwareVersions = __version__
    equipment.PurposeOfReferenceCodeSequence = Sequence([_code_item(DEIDENTIFYING_EQUIPMENT_CODE)])
    equipment.ContributionDescription = (
        f"De-identified with deid {__version__}: PS3.15 {__dicom_edition__} Basic Application "
        f"Confidentiality Profile, policy {policy_name}"
    )[:1024]
    return equipment


def _fill(ds: Dataset, policy: Policy, pixels: bool = False) -> None:
    """Set (or merge into) the marker attributes as ordinary elements."""
    ds.PatientIdentityRemoved = "YES"
    if pixels:
        ds.BurnedInAnnotation = "NO"
    previous = ds.get("DeidentificationMethod") or []
    previous = [previous] if isinstance(previous, str) else [str(v) for v in previous]
    ours = method_text(policy, pixels)
    ds.DeidentificationMethod = [v for v in previous if v not in ours] + ours
    codes = Sequence(list(ds.get("DeidentificationMethodCodeSequence") or []))
    present = {str(item.get("CodeValue", "")) for item in codes}
    for value in method_code_values(policy, pixels):
        if value not in present:
            codes.append(_code_item(value))
    ds.DeidentificationMethodCodeSequence = codes
    ds.LongitudinalTemporalInformationModified = longitudinal_value(policy)
    contributing = Sequence(list(ds.get("ContributingEquipmentSequence") or []))
    contributing.append(_equipment(policy.name))
    ds.ContributingEquipmentSequence = contributing


def _policy_key(policy: Policy) -> tuple[str, tuple[ProfileOption, ...]]:
    return policy.name, tuple(options_of(policy))


@functools.lru_cache(maxsize=64)
def _encoded_markers(
    key: tuple[str, tuple[ProfileOption, ...]], implicit: bool, pixels: bool
) -> tuple[RawDataElement, ...]:
    """The marker elements of a policy, encoded once (little endian) and read back raw."""
    template = Dataset()
    _fill(template, Policy(options=frozenset(key[1]), name=key[0]), pixels)
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, implicit
    write_dataset(buffer, template)
    parsed = read_dataset(io.BytesIO(buffer.getvalue()), implicit, True)
    return tuple(cast(RawDataElement, stored(parsed, tag)) for tag in parsed.keys())


def transfer_syntax(ds: Dataset) -> UID:
    """The transfer syntax to write: the input's own, else what its encoding was."""
    meta = getattr(ds, "file_meta", None)
    ts = get_value(meta, "TransferSyntaxUID") if meta is not None else None
    if ts:
        return UID(str(ts))
    implicit, little = ds.original_encoding
    if little is False:
        return ExplicitVRBigEndian
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian


def _required(ds: Dataset, keyword: str) -> object:
    if keyword not in ds:
        raise AttributeError(keyword)
    return get_value(ds, keyword)


def new_file_meta(ds: Dataset, ts: UID) -> FileMetaDataset:
    """A new File Meta Information group: nothing of the original one is carried over."""
    return file_meta_for(
        str(_required(ds, "SOPClassUID")), str(_required(ds, "SOPInstanceUID")), ts
    )


def file_meta_for(sop_class_uid: str, sop_instance_uid: str, ts: UID) -> FileMetaDataset:
    """The new File Meta Information group of an object with these (new) UIDs."""
    meta = FileMetaDataset()
    values = (
        b"\x00\x01",
        UID(sop_class_uid),
        UID(sop_instance_uid),
        ts,
        UID(IMPLEMENTATION_CLASS_UID),
        IMPLEMENTATION_VERSION_NAME,
    )
    # What setting each by keyword does (an element of the dictionary's VR), without the
    # keyword lookups.
    for (tag, vr), value in zip(_META_ELEMENTS, values, strict=True):
        meta[tag] = DataElement(tag, vr, value)
    return meta


_META_ELEMENTS = (
    (0x00020001, "OB"),  # FileMetaInformationVersion
    (0x00020002, "UI"),  # MediaStorageSOPClassUID
    (0x00020003, "UI"),  # MediaStorageSOPInstanceUID
    (0x00020010, "UI"),  # TransferSyntaxUID
    (0x00020012, "UI"),  # ImplementationClassUID
    (0x00020013, "SH"),  # ImplementationVersionName
)
