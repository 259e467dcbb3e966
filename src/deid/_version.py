"""Version of deid and the edition of the DICOM standard its tables come from."""

__version__ = "0.1.0"
__dicom_edition__ = "2026c"
