"""Enumerations that speak the standard: action codes, options, attribute Types, reasons."""

from __future__ import annotations

from enum import Enum


class ActionCode(str, Enum):
    """The action codes of PS3.15 Table E.1-1a.

    The simple codes are what a :class:`deid.Decision` carries; the compound ones appear in the
    tables and are resolved against the attribute's Type in the object's IOD.
    """

    D = "D"
    Z = "Z"
    X = "X"
    K = "K"
    C = "C"
    U = "U"
    Z_D = "Z/D"
    X_Z = "X/Z"
    X_D = "X/D"
    X_Z_D = "X/Z/D"
    X_Z_U = "X/Z/U*"

    @property
    def is_compound(self) -> bool:
        return "/" in self.value

    @classmethod
    def parse(cls, value: ActionCode | str) -> ActionCode:
        """Convert a table cell or user string; raise ``ValueError`` for anything else."""
        if isinstance(value, ActionCode):
            return value
        text = value.strip().upper()
        for member in cls:
            if member.value == text:
                return member
        raise ValueError(f"unknown action code {value!r}")


class ProfileOption(str, Enum):
    """The options of the Basic Application Level Confidentiality Profile.

    The values are the column names of Table E.1-1 in ``profiles/``; ``code`` is the CID 7050
    code value of the option.
    """

    RETAIN_SAFE_PRIVATE = "retain_safe_private"
    RETAIN_UIDS = "retain_uids"
    RETAIN_DEVICE_IDENTITY = "retain_device_identity"
    RETAIN_INSTITUTION_IDENTITY = "retain_institution_identity"
    RETAIN_PATIENT_CHARACTERISTICS = "retain_patient_characteristics"
    RETAIN_LONG_FULL_DATES = "retain_long_full_dates"
    RETAIN_LONG_MODIFIED_DATES = "retain_long_modified_dates"
    CLEAN_DESCRIPTORS = "clean_descriptors"
    CLEAN_STRUCTURED_CONTENT = "clean_structured_content"
    CLEAN_GRAPHICS = "clean_graphics"

    @property
    def code(self) -> str:
        """CID 7050 code value (coding scheme DCM)."""
        return _OPTION_CODES[self]

    @classmethod
    def parse(cls, value: ProfileOption | str) -> ProfileOption:
        if isinstance(value, ProfileOption):
            return value
        text = value.strip().lower().replace("-", "_").replace(" ", "_")
        for member in cls:
            if text in (member.value, member.name.lower()):
                return member
        raise ValueError(f"unknown profile option {value!r}")


_OPTION_CODES = {
    ProfileOption.CLEAN_GRAPHICS: "113103",
    ProfileOption.CLEAN_STRUCTURED_CONTENT: "113104",
    ProfileOption.CLEAN_DESCRIPTORS: "113105",
    ProfileOption.RETAIN_LONG_FULL_DATES: "113106",
    ProfileOption.RETAIN_LONG_MODIFIED_DATES: "113107",
    ProfileOption.RETAIN_PATIENT_CHARACTERISTICS: "113108",
    ProfileOption.RETAIN_DEVICE_IDENTITY: "113109",
    ProfileOption.RETAIN_UIDS: "113110",
    ProfileOption.RETAIN_SAFE_PRIVATE: "113111",
    ProfileOption.RETAIN_INSTITUTION_IDENTITY: "113112",
}

BASIC_PROFILE_CODE = "113100"
CLEAN_PIXEL_DATA_CODE = "113101"
DEIDENTIFYING_EQUIPMENT_CODE = "109104"


class AttributeType(str, Enum):
    """Attribute Type in an IOD (PS3.3 §7.4)."""

    TYPE_1 = "1"
    TYPE_1C = "1C"
    TYPE_2 = "2"
    TYPE_2C = "2C"
    TYPE_3 = "3"

    @property
    def strictness(self) -> int:
        """3 for Type 1/1C (a value is needed), 2 for Type 2/2C (presence), 1 for Type 3."""
        return {"1": 3, "1C": 3, "2": 2, "2C": 2, "3": 1}[self.value]


class PixelMode(str, Enum):
    """When the pixel data must be cleaned of burned-in text (policy ``clean_pixel_data``).

    ``auto``: objects at risk (Burned In Annotation YES, modalities and SOP classes that
    usually carry text, secondary captures); ``always``: every object with pixel data;
    ``never``: pixel data is released as it is (the caller has checked it).
    """

    AUTO = "auto"
    ALWAYS = "always"
    NEVER = "never"


class PixelText(str, Enum):
    """Which burned-in text the pixel pass blanks (policy ``[pixels] text``).

    ``all``: every text the detector finds (needs detection only; the upload default);
    ``identifiers``: text that reads as an identifier of the object, a date, a time, a name or
    an ID, keeping allowlisted labels (L/R, orientation letters, scale and measurement labels);
    needs an engine that recognizes text.
    """

    ALL = "all"
    IDENTIFIERS = "identifiers"


class PixelRead(str, Enum):
    """Where the OCR engine reads a flagged frame (policy ``[pixels] read``).

    ``places`` (default): only the places the text pre-screen flags, as crops, for engines
    whose detection is local (the whole frame otherwise); ``frames``: every flagged frame whole
    (slower; for sites that prefer recall on faint text the pre-screen might not outline).
    """

    PLACES = "places"
    FRAMES = "frames"


class RejectReason(str, Enum):
    """Why an object was not released. Values are stable codes for audits and exit paths."""

    NOT_DICOM = "NOT_DICOM"
    TRUNCATED = "TRUNCATED"
    INVALID_DATASET = "INVALID_DATASET"
    MISSING_UID = "MISSING_UID"
    UNSUPPORTED_SOP_CLASS = "UNSUPPORTED_SOP_CLASS"
    UNSUPPORTED_TRANSFER_SYNTAX = "UNSUPPORTED_TRANSFER_SYNTAX"
    RESIDUAL_PHI = "RESIDUAL_PHI"
    WRITE_FAILED = "WRITE_FAILED"
    DUPLICATE_INSTANCE = "DUPLICATE_INSTANCE"
    BURNED_IN_TEXT = "BURNED_IN_TEXT"
    PIXEL_CLEANING_FAILED = "PIXEL_CLEANING_FAILED"
    SIZE_LIMIT = "SIZE_LIMIT"
    RECOGNIZABLE_VISUAL_FEATURES = "RECOGNIZABLE_VISUAL_FEATURES"
    UNSAFE_STRUCTURED_CONTENT = "UNSAFE_STRUCTURED_CONTENT"


class Outcome(str, Enum):
    """Outcome of one input in an audit record."""

    DEIDENTIFIED = "deidentified"
    REJECTED = "rejected"
    FAILED = "failed"
    SKIPPED = "skipped"  # not DICOM, or a media directory: recorded, nothing to de-identify


class Rule(str, Enum):
    """Where a :class:`deid.Decision` comes from."""

    TABLE = "E.1-1"
    OPTION = "E.1-1 option"
    STRUCTURED = "E.3.4-1"
    SAFE_PRIVATE = "E.3.10-1"
    PRIVATE_CHARACTERISTICS = "private characteristics"
    PRIVATE = "private"
    OVERRIDE = "override"
    PERSON_NAME = "VR PN"
    DATE_VR = "date VR"
    UID_VR = "UID VR"
    WELL_KNOWN_UID = "well-known UID"
    CONTEXT = "context"
    STRUCTURE = "structure"
    DERIVED = "derived"
    UNLISTED = "unlisted"
