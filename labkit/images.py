"""Docker images for the lab: the offline stand-in for ``amazon/amazon-ecs-sample``."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from labkit.errors import DockerUnavailable, PrerequisiteError

#: The image the lab guide pulls from Docker Hub.
LAB_SAMPLE_IMAGE = "amazon/amazon-ecs-sample:latest"

#: Where the stand-in's Dockerfile and page live.
SAMPLE_APP_DIR = Path(__file__).resolve().parent.parent / "notebooks" / "sample-app"

#: Places a static busybox may be found (Debian's busybox-static installs /bin/busybox).
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")


def docker_client():  # -> docker.DockerClient
    """A Docker client that answers, or :class:`DockerUnavailable` saying how to start one."""
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.ping()
        return client
    except Exception as exc:  # docker raises several unrelated types here
        raise DockerUnavailable(
            "Docker Engine is not reachable.",
            why=f"Connecting to the Docker daemon failed: {exc.__class__.__name__}: {exc}",
            fix="Install and start Docker Engine (Debian: `apt-get install -y docker.io` "
            "then `dockerd &`), then re-run this cell. API-only steps still work.",
        ) from None


def _static_busybox() -> Path:
    for candidate in BUSYBOX_CANDIDATES:
        path = Path(candidate)
        if path.is_file():
            return path
    raise PrerequisiteError(
        "No static busybox binary was found to build the sample image.",
        why=f"Looked for {', '.join(BUSYBOX_CANDIDATES)}.",
        fix="Install Debian's busybox-static package (`apt-get install -y busybox-static`).",
    )


def build_sample_image(tag: str = LAB_SAMPLE_IMAGE, client=None) -> str:
    """Build the offline stand-in sample image under ``tag``; return its image id.

    The build is ``FROM scratch`` plus the host's static busybox, so it needs no
    registry and no internet. Building twice reuses Docker's cache.
    """
    client = client or docker_client()
    with tempfile.TemporaryDirectory(prefix="labkit-sample-") as tmp:
        context = Path(tmp)
        for item in SAMPLE_APP_DIR.iterdir():
            shutil.copy(item, context / item.name)
        shutil.copy(_static_busybox(), context / "busybox")
        image, _logs = client.images.build(path=str(context), tag=tag, rm=True)
    return image.id
