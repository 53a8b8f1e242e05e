"""Where the kit's own files are: the lab's notebooks folder, with its ``solutions/``, the
lab's ``task-definition.json`` and the ``sample-app/``. Every module finds them here.

In a clone (and an editable install of one) that is the clone's top-level ``notebooks/``.
An installed kit (a wheel: ``pipx install .``, ``pip install .``) carries a copy of that
folder as package data, ``labkit/_kit_files/notebooks`` (pyproject.toml's wheel
``sources`` puts it there), so the kit works from any folder without its clone.

The installed copy is never worked in: notebook 03 writes ``my-task-definition.json``
beside the notebooks, and that would land in site-packages. :func:`editable_in_place`
says when a folder must be copied first (:func:`copy_notebooks`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

#: Only in an installed kit (a wheel): the notebooks folder shipped inside the package.
INSTALLED_NOTEBOOKS = Path(__file__).resolve().parent / "_kit_files" / "notebooks"
#: Only in a clone (or an editable install of one): the clone's notebooks folder.
CLONE_NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
#: What a copy of a notebooks folder leaves out: editors' and Python's droppings.
NOT_COPIED = frozenset({".ipynb_checkpoints", "__pycache__"})


def kit_notebooks() -> Path:
    """The kit's notebooks folder: the installed copy in a wheel install, else the clone's.

    The installed copy wins: beside an installed package (site-packages) a folder named
    ``notebooks`` could be anyone's."""
    return INSTALLED_NOTEBOOKS if INSTALLED_NOTEBOOKS.is_dir() else CLONE_NOTEBOOKS


def is_installed_copy(folder: Path) -> bool:
    """Is ``folder`` the notebooks folder inside the installed package?"""
    return INSTALLED_NOTEBOOKS.is_dir() and folder.resolve() == INSTALLED_NOTEBOOKS


def editable_in_place(folder: Path, first_notebook: str) -> bool:
    """May the lab be worked in ``folder`` itself (it writes files beside the notebooks)?

    Not the installed kit's copy (even where this user could write to site-packages, as
    with pipx), and not a folder this user cannot write to."""
    if is_installed_copy(folder):
        return False
    return all(os.access(path, os.W_OK) for path in (folder, folder / first_notebook))


def copy_notebooks(source: Path, target: Path) -> Path:
    """Copy the notebooks folder ``source`` into ``target``, adding only what is missing:
    a file already in ``target`` (a learner's edited notebook, their task definition) is
    never overwritten. The copy has the content only (no modes), and is the copier's."""
    for item in sorted(source.rglob("*")):
        relative = item.relative_to(source)
        if NOT_COPIED & set(relative.parts):
            continue
        destination = target / relative
        if item.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
        elif not destination.exists():
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(item, destination)
    target.mkdir(parents=True, exist_ok=True)
    return target
