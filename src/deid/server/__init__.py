"""``deid serve``: a DICOMweb STOW-RS upload service that de-identifies every instance.

Imported only by ``deid serve`` (never by ``import deid``): it needs the ``server`` extra
(Starlette, uvicorn, httpx). See :mod:`deid.server.app` for the endpoints, the storage and the
audit, and :mod:`deid.server.stow` for the response.
"""

from __future__ import annotations

from deid.server.app import Limits, create_app

__all__ = ["Limits", "create_app"]
