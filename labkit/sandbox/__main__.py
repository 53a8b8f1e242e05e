"""The sandbox process: ``python -m labkit.sandbox`` (``labkit sandbox up`` starts it)."""

from labkit.sandbox.context import Settings
from labkit.sandbox.moto_footprint import trim

trim(Settings().region)  # before anything imports moto's EC2 module

from labkit.sandbox.server import main  # noqa: E402 - must follow trim()

raise SystemExit(main())
