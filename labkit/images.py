"""Docker images for the lab: the offline stand-in for ``amazon/amazon-ecs-sample``."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.errors import DockerUnavailable, PrerequisiteError
from labkit.kit_files import kit_notebooks

#: The image the lab guide pulls from Docker Hub.
LAB_SAMPLE_IMAGE = "amazon/amazon-ecs-sample:latest"

#: Where the stand-in's Dockerfile and page live.
SAMPLE_APP_DIR = kit_notebooks() / "sample-app"

#: Places a static busybox may be found (Debian's busybox-static installs /bin/busybox).
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")


def docker_client():  # -> docker.DockerClient
    """A Docker client that answers, or :class:`DockerUnavailable` saying how to start one."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.ping()
        return client
    except Exception as exc:  # docker raises several unrelated types here
        cli = "" if shutil.which("docker") else " The docker command is not installed either."
        detail = " ".join(str(exc).split())[:240]
        raise DockerUnavailable(
            "Docker Engine is not reachable, so this Docker step cannot run.",
            why=f"Nothing answers at {host} (the Docker daemon is stopped or not "
            f"installed): {exc.__class__.__name__}: {detail}.{cli}",
            fix="Install and start Docker Engine (Debian: `apt-get install -y docker.io` "
            "then `systemctl start docker` or `dockerd &`), check DOCKER_HOST, then re-run "
            "this cell. Steps that only call the AWS API (repository, task definition, "
            "checks) still work without Docker.",
        ) from None


#: Names a static busybox to build the stand-in from, or ``none`` to build as if the host
#: had none (as on a Mac, where the stand-in is built from a local busybox image instead).
BUSYBOX_VARIABLE = "LABKIT_BUSYBOX"
#: Names a local image with busybox's httpd to build the stand-in from.
SAMPLE_BASE_VARIABLE = "LABKIT_SAMPLE_BASE_IMAGE"
#: Images with busybox's httpd that an engine may already hold (Docker Hub's busybox).
BUSYBOX_IMAGES = ("busybox:latest", "busybox:stable", "busybox:musl", "busybox:uclibc")


def static_busybox() -> Path | None:
    """The host's static busybox (Linux only: the image is ``FROM scratch``), or None."""
    chosen = os.environ.get(BUSYBOX_VARIABLE, "").strip()
    if chosen.lower() == "none":
        return None
    for candidate in (chosen,) if chosen else BUSYBOX_CANDIDATES:
        path = Path(candidate)
        if path.is_file():
            return path
    return None


def local_busybox_image(client) -> str | None:
    """An image the engine already has whose busybox serves HTTP, or None."""
    import docker.errors

    chosen = os.environ.get(SAMPLE_BASE_VARIABLE, "").strip()
    for name in (chosen,) if chosen else BUSYBOX_IMAGES:
        try:
            client.images.get(name)
            return name
        except docker.errors.ImageNotFound:
            continue
    return None


def build_sample_image(tag: str = LAB_SAMPLE_IMAGE, client=None) -> str:
    """Build the offline stand-in sample image under ``tag``; return its image id.

    Needs no registry and no internet: ``FROM scratch`` plus the host's static busybox
    (Debian's busybox-static), or, where the host has none (macOS, Windows), ``FROM`` a
    busybox image the engine already holds. Building twice reuses Docker's cache.
    """
    client = client or docker_client()
    busybox = static_busybox()
    base = None if busybox is not None else local_busybox_image(client)
    if busybox is None and base is None:
        raise PrerequisiteError(
            "The offline sample image cannot be built here.",
            why="Docker Hub did not answer (so amazon/amazon-ecs-sample cannot be pulled), "
            f"this host has no static busybox ({', '.join(BUSYBOX_CANDIDATES)}), and Docker "
            f"holds no busybox image ({', '.join(BUSYBOX_IMAGES)}) to build from.",
            fix="Connect to the internet once: the lab then pulls amazon/amazon-ecs-sample "
            "as the guide does (or run `docker pull busybox` for the offline stand-in). "
            "On Debian/Ubuntu: `apt-get install -y busybox-static`. `labkit doctor` checks "
            "this and the rest.",
        )
    with tempfile.TemporaryDirectory(prefix="labkit-sample-") as tmp:
        context = Path(tmp)
        for item in SAMPLE_APP_DIR.iterdir():
            shutil.copy(item, context / item.name)
        if busybox is not None:
            shutil.copy(busybox, context / "busybox")
            options: dict[str, Any] = {}
        else:
            options = {"dockerfile": "Dockerfile.from-image", "buildargs": {"BASE": base}}
        image, _logs = client.images.build(path=str(context), tag=tag, rm=True, **options)
    return image.id


# --------------------------------------------------------------------------------------
# Task 2: the sample image the lab's own lines tag, log in with and push (tasks.task2)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleImage:
    """The local ``amazon/amazon-ecs-sample:latest`` and where it came from."""

    tag: str
    image_id: str
    source: str  # "already here" | "pulled from Docker Hub" | "built locally (offline stand-in)"

    def __str__(self) -> str:
        return f"{self.tag} ({self.image_id[:19]}): {self.source}"


def ensure_sample_image(client=None) -> SampleImage:
    """Make sure ``amazon/amazon-ecs-sample:latest`` exists locally.

    Reuse it if present; otherwise pull it, as the lab does; where Docker Hub cannot be
    reached (offline, the sandbox's usual case) build the stand-in from
    ``notebooks/sample-app/`` under the same name, so the lab's commands work unchanged.
    """
    import docker.errors

    client = client or docker_client()
    try:
        image = client.images.get(LAB_SAMPLE_IMAGE)
        return SampleImage(LAB_SAMPLE_IMAGE, image.id, "already here")
    except docker.errors.ImageNotFound:
        pass
    try:
        image = client.images.pull(LAB_SAMPLE_IMAGE)
        return SampleImage(LAB_SAMPLE_IMAGE, image.id, "pulled from Docker Hub")
    except docker.errors.APIError as exc:
        reason = str(getattr(exc, "explanation", "") or exc).splitlines()[0][:160]
    image_id = build_sample_image(LAB_SAMPLE_IMAGE, client=client)
    print(
        f"ℹ️  Docker Hub is not reachable ({reason}).\n"
        f"   Built the offline stand-in from {SAMPLE_APP_DIR.name}/ as {LAB_SAMPLE_IMAGE}: "
        "a tiny web server with the same page idea, so the rest of the lab is unchanged."
    )
    return SampleImage(LAB_SAMPLE_IMAGE, image_id, "built locally (offline stand-in)")


def copy_sample_app(target: Path | str = "my-app") -> Path:
    """The sample app's page and a Dockerfile that builds here, in ``target`` (beside the
    notebooks) for the learner to change (notebook 05's v2). An existing copy is kept.

    With the host's static busybox the Dockerfile is the stand-in's (``FROM scratch``);
    otherwise it is built ``FROM`` a busybox image the engine holds."""
    target = Path(target)
    if (target / "index.html").exists():
        print(f"📁 {target}/ exists already (your changes are kept).")
        return target
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(SAMPLE_APP_DIR / "index.html", target / "index.html")
    busybox = static_busybox()
    if busybox is not None:
        shutil.copy(busybox, target / "busybox")
        shutil.copy(SAMPLE_APP_DIR / "Dockerfile", target / "Dockerfile")
    else:
        base = local_busybox_image(docker_client()) or BUSYBOX_IMAGES[0]
        text = (SAMPLE_APP_DIR / "Dockerfile.from-image").read_text()
        (target / "Dockerfile").write_text(
            text.replace(f"ARG BASE={BUSYBOX_IMAGES[0]}", f"ARG BASE={base}")
        )
    print(f"📁 {target}/: Dockerfile and index.html (the page to change).")
    return target
