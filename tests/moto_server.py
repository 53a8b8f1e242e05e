"""A bare ``moto_server`` in a process of its own, as a user's AWS-compatible endpoint.

A separate process (not moto's in-process mock) so that its state never mixes with the
unit tests' ``mock_aws`` and each test module starts from an empty endpoint.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from benchmarks.polling import wait_for
from tests.conftest import free_port

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _post(url: str) -> None:
    _NO_PROXY.open(urllib.request.Request(url, data=b"", method="POST"), timeout=10).close()


@contextmanager
def moto_server_process(timeout_s: float = 30) -> Iterator[str]:
    """Start ``python -m moto.server`` on a free loopback port; yield its URL; stop it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def answers() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"moto_server exited ({process.returncode}) on {url}")
            _NO_PROXY.open(f"{url}/moto-api/", timeout=2).close()
            return True

        wait_for(answers, timeout_s, 0.2, what=f"moto_server on {url}", ignoring=(OSError,))
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def reset(url: str) -> None:
    """Empty the endpoint (moto's own reset route: test set-up only, never in labkit)."""
    _post(f"{url}/moto-api/reset")
