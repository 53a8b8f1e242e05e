"""The sandbox's botocore sharing: one parse per data file, and the same data botocore reads.

Run in a fresh interpreter, as the sandbox process does, so the patch stays out of the
test process.
"""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import json
from botocore.loaders import Loader
from labkit.sandbox.moto_footprint import share_botocore_files

plain = Loader().load_service_model("ecs", "service-2")
plain_services = Loader().list_available_services("service-2")
share_botocore_files()
share_botocore_files()  # a second call must not wrap twice
first, second = Loader(), Loader()
model = first.load_service_model("ecs", "service-2")
print(json.dumps({
    "same_object": model is second.load_service_model("ecs", "service-2"),
    "same_data": model == plain,
    "same_services": second.list_available_services("service-2") == plain_services,
    "ecs_listed": "ecs" in first.list_available_services("service-2"),
}))
"""


def test_loaders_share_one_parse_of_the_same_data() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(result.stdout) == {
        "same_object": True,
        "same_data": True,
        "same_services": True,
        "ecs_listed": True,
    }
