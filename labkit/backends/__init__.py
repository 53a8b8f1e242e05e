"""Where the lab's calls go, and how each backend gets its lab environment.

``sandbox`` (built in: :mod:`labkit.sandbox`), ``endpoint`` (an AWS-compatible endpoint,
set up with plain API calls: :mod:`labkit.backends.endpoint`) and ``aws`` (your own
account, set up with CloudFormation: :mod:`labkit.backends.aws`).
"""
