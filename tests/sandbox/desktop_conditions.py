"""A Mac's conditions on this Linux machine: no registry binary, no static busybox, and
an engine that already holds ``registry:2`` and ``amazon/amazon-ecs-sample`` (as a Docker
Desktop user's first pulls leave it).

Docker Hub does not answer here, so both images are built offline: ``registry:2`` from
Debian's registry binary and the libraries ``ldd`` lists, laid out as the real image is
(``/bin/registry``, ``/etc/docker/registry/config.yml``, storage in ``/var/lib/registry``,
port 5000); the sample from the kit's page and Debian's static busybox. An image already
present under either name is used as it is and never replaced.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

REGISTRY_IMAGE = "registry:2"
SAMPLE_IMAGE = "amazon/amazon-ecs-sample:latest"
#: Marks the images this module built, so nobody mistakes them for Docker Hub's.
STAND_IN_LABEL = "labkit.test.offline-stand-in"

#: The environment that hides the host's registry binary and busybox from the kit.
MAC_CONDITIONS = {
    "LABKIT_REGISTRY": "auto",
    "LABKIT_REGISTRY_BINARY": "none",
    "LABKIT_BUSYBOX": "none",
}

_REGISTRY_CONFIG = """\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
"""

_REGISTRY_DOCKERFILE = f"""\
FROM scratch
COPY rootfs/ /
VOLUME ["/var/lib/registry"]
EXPOSE 5000
LABEL {STAND_IN_LABEL}=registry
ENTRYPOINT ["/bin/registry", "serve", "/etc/docker/registry/config.yml"]
"""


def _present(client: Any, name: str) -> bool:
    import docker.errors

    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False


def _libraries(binary: str) -> list[Path]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    return [Path(p) for p in re.findall(r"(/\S+) \(0x", out)]


def ensure_registry_image(client: Any) -> str:
    """``registry:2`` in the engine: the one there, or one built offline from Debian's."""
    if _present(client, REGISTRY_IMAGE):
        return REGISTRY_IMAGE
    binary = shutil.which("docker-registry")
    assert binary, "building registry:2 offline needs Debian's docker-registry"
    with tempfile.TemporaryDirectory(prefix="labkit-registry-image-") as tmp:
        root = Path(tmp) / "rootfs"
        (root / "bin").mkdir(parents=True)
        shutil.copy(binary, root / "bin" / "registry")
        for library in _libraries(binary):
            target = root / library.relative_to("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(library.resolve(), target)
        config = root / "etc" / "docker" / "registry" / "config.yml"
        config.parent.mkdir(parents=True)
        config.write_text(_REGISTRY_CONFIG)
        (root / "var" / "lib" / "registry").mkdir(parents=True)
        (Path(tmp) / "Dockerfile").write_text(_REGISTRY_DOCKERFILE)
        client.images.build(path=tmp, tag=REGISTRY_IMAGE, rm=True)
    return REGISTRY_IMAGE


def ensure_sample_image(client: Any) -> str:
    """``amazon/amazon-ecs-sample`` in the engine: the one there, or the kit's page built
    offline with Debian's static busybox (what a pull from Docker Hub stands for here)."""
    from labkit.images import SAMPLE_APP_DIR

    if _present(client, SAMPLE_IMAGE):
        return SAMPLE_IMAGE
    busybox = Path("/bin/busybox")
    assert busybox.is_file(), "building the sample offline needs Debian's busybox-static"
    with tempfile.TemporaryDirectory(prefix="labkit-sample-image-") as tmp:
        shutil.copy(SAMPLE_APP_DIR / "index.html", Path(tmp) / "index.html")
        shutil.copy(busybox, Path(tmp) / "busybox")
        (Path(tmp) / "Dockerfile").write_text(
            "FROM scratch\n"
            "COPY busybox /bin/busybox\n"
            "COPY index.html /www/index.html\n"
            f"LABEL {STAND_IN_LABEL}=amazon-ecs-sample\n"
            "EXPOSE 80\n"
            'ENTRYPOINT ["/bin/busybox", "httpd", "-f", "-v", "-p", "80", "-h", "/www"]\n'
        )
        client.images.build(path=tmp, tag=SAMPLE_IMAGE, rm=True)
    return SAMPLE_IMAGE
