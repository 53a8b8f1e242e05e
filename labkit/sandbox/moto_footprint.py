"""Trim what moto loads at import to what the sandbox serves: one region, one AMI.

moto's EC2 module reads every region's instance-type offerings and its catalogue of
AMIs when it is first imported: about 60 MB of the sandbox's memory and 0.3 s of its
start, for data the lab never asks about. This must run before moto's EC2 module is
imported, so the sandbox process calls it first thing (``python -m labkit.sandbox``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: One ECS-optimized Amazon Linux AMI: what the sandbox's container instances "run".
SANDBOX_AMIS = Path(__file__).parent / "resources" / "amis.json"


def trim(region: str) -> None:
    """Keep only ``region``'s EC2 offerings and the sandbox's AMI (uses moto's own hooks)."""
    os.environ.setdefault("MOTO_AMIS_PATH", str(SANDBOX_AMIS))
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
