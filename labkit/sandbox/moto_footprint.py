"""Trim what moto loads to what the sandbox serves: one region, one AMI, one copy of a model.

moto's EC2 module reads every region's instance-type offerings and its catalogue of
AMIs when it is first imported: about 60 MB of the sandbox's memory and 0.3 s of its
start, for data the lab never asks about. And every botocore ``Session`` (moto makes a
fresh one in several places, e.g. to list EC2's regions three times over) and every
loader parses the same JSON again: the 1.2 MB endpoints file and EC2's 5 MB model took
about 2 s of the start and tens of MB. :func:`trim` must run before moto's EC2 module
is imported, so the sandbox process calls it first thing (``python -m labkit.sandbox``).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

#: One ECS-optimized Amazon Linux AMI: what the sandbox's container instances "run".
SANDBOX_AMIS = Path(__file__).parent / "resources" / "amis.json"


def share_botocore_files() -> None:
    """Parse each of botocore's data files once per process, not once per loader.

    botocore's loaders cache per instance only. The files are read-only package data, and
    botocore treats what it loads as read-only (its one in-place step, merging a model's
    ``-extras`` files, gives the same result when repeated), so one parsed copy can serve
    every loader. The list of services a set of search paths holds is shared the same way.
    """
    from botocore.loaders import JSONFileLoader, Loader

    if getattr(JSONFileLoader.load_file, "labkit_shared", False):
        return
    load_file = JSONFileLoader.load_file
    list_services = Loader.list_available_services
    parsed: dict[str, Any] = {}
    listed: dict[tuple[Any, ...], list[str]] = {}
    lock = threading.Lock()

    def load_file_once(self: JSONFileLoader, file_path: str) -> Any:
        with lock:  # two threads asking for the same file parse it once
            if file_path not in parsed:
                parsed[file_path] = load_file(self, file_path)
            return parsed[file_path]

    def list_services_once(self: Loader, type_name: str) -> list[str]:
        # Listing ~400 service directories per loader took longer than parsing a model.
        key = (tuple(self.search_paths), type(self.file_loader), type_name)
        with lock:
            if key not in listed:
                listed[key] = list_services(self, type_name)
            return list(listed[key])

    load_file_once.labkit_shared = True  # type: ignore[attr-defined]
    JSONFileLoader.load_file = load_file_once  # type: ignore[method-assign]
    Loader.list_available_services = list_services_once  # type: ignore[method-assign]


def trim(region: str) -> None:
    """Keep only ``region``'s EC2 offerings and the sandbox's AMI (uses moto's own hooks)."""
    os.environ.setdefault("MOTO_AMIS_PATH", str(SANDBOX_AMIS))
    share_botocore_files()
    import moto.utilities.utils as moto_utils

    load_resource = moto_utils.load_resource

    def load_one_region(filename: str, *args: Any, **kwargs: Any) -> Any:
        # Offerings live in ec2/resources/instance_type_offerings/<kind>/<region>.json.gz.
        if "instance_type_offerings" in filename and not Path(filename).name.startswith(
            f"{region}."
        ):
            return []
        return load_resource(filename, *args, **kwargs)

    moto_utils.load_resource = load_one_region
