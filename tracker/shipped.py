"""Where the files shipped with b2track live: the model zoo (``models/``) and the masks (``masks/``).

In a checkout or an editable install they are the repository's own folders. A wheel (``pip install .``)
carries them as package data in ``tracker/_shipped/`` (the mapping is in pyproject.toml), so an installed
b2track finds them without the repository.
"""
from __future__ import annotations

from pathlib import Path

PACKAGE_DATA = Path(__file__).resolve().parent / "_shipped"
REPOSITORY = Path(__file__).resolve().parents[1]


def shipped_dir(name: str) -> Path:
    """The shipped folder ``name`` ('models', 'masks'): the installed package data, else the repository's."""
    installed = PACKAGE_DATA / name
    return installed if installed.is_dir() else REPOSITORY / name
