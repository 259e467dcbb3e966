"""Finding optional packages and the model files they ship, without importing them."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def has_module(name: str) -> bool:
    """Whether ``name`` can be imported (nothing is imported)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def model_dir(package: str, *files: str, folder: str = "models") -> Path | None:
    """``<package>/<folder>`` of an installed package when it holds every one of ``files``;
    found without importing the package (its imports may need things deid does not install)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / folder
        if all((candidate / name).is_file() for name in files):
            return candidate
    return None
