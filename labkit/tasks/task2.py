"""Task 2 of the lab guide: pull, tag, log in and push the sample image (steps 17–25).

The learner sets ``REPOSITORY`` (steps 19–21, :func:`use_repository` checks it and sets
``$REPOSITORY``), then types the lab's own lines in ``%%bash`` cells or a terminal: docker
tag, the ``aws ecr get-login-password | docker login`` pipe, docker push. ``q1.check()``
reads the registry (ECR's DescribeImages and BatchGetImage) and the local Docker image:
the image tagged ``latest`` must be in the repository AND be the sample image tagged in
step 22, whether the lines ran in the notebook or in a terminal.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from labkit import ecr
from labkit.backends import endpoint
from labkit.images import LAB_SAMPLE_IMAGE, docker_client
from labkit.lab import Lab, current_lab
from labkit.tasks.exercise import Exercise, Solution, Task, Verdict, ____
from labkit.tasks.understanding import Question, Quiz

__all__ = [
    "TASK",
    "on_open",
    "use_repository",
    "q1",
    "quiz",
    "____",
    "compare_digests",
    "push_address",
    "push_with_lab_lines",
]

#: The tag the lab pushes: ``docker push $REPOSITORY`` without a tag pushes ``latest``.
LAB_TAG = "latest"


@dataclass(frozen=True)
class LocalSample:
    """The local ``amazon/amazon-ecs-sample:latest`` (step 18), as Docker knows it."""

    image_id: str
    repo_digests: tuple[str, ...]

    def matches(self, digest: str, config_digest: str) -> bool:
        """Is the registry's image (manifest ``digest``, config ``config_digest``) this one?

        Docker records ``<repository>@<digest>`` in RepoDigests when it pushes; the image
        id is the config's digest (or, with the containerd image store, the manifest's)."""
        return self.image_id in (config_digest, digest) or any(
            entry.endswith(f"@{digest}") for entry in self.repo_digests
        )


def local_sample() -> LocalSample | None:
    """The local sample image, or None when it is not here (or Docker is not reachable)."""
    import docker.errors

    from labkit.errors import DockerUnavailable

    try:
        image = docker_client().images.get(LAB_SAMPLE_IMAGE)
    except (DockerUnavailable, docker.errors.ImageNotFound):
        return None
    return LocalSample(image.id, tuple(image.attrs.get("RepoDigests") or ()))


def _config_digest(lab: Lab, digest: str) -> str:
    """The image config's digest, from the manifest ECR serves (BatchGetImage)."""
    reply = lab.ecr.batch_get_image(
        repositoryName=lab.repository_name, imageIds=[{"imageDigest": digest}]
    )
    for image in reply.get("images", []):
        try:
            return json.loads(image["imageManifest"]).get("config", {}).get("digest", "")
        except (KeyError, ValueError):
            return ""
    return ""


def _image_pushed(lab: Lab) -> Verdict:
    name = lab.repository_name
    if ecr.find_repository(lab) is None:
        return Verdict.wrong(
            f"repository {name!r} does not exist", "Do Task 1 first (notebook 01): it creates it."
        )
    pages = lab.ecr.get_paginator("describe_images").paginate(repositoryName=name)
    images = [image for page in pages for image in page["imageDetails"]]
    if not images:
        return Verdict.wrong(
            f"nothing has been pushed to {name} yet",
            "Set REPOSITORY (step 20), then type the tag, login and push lines (steps 22–25) "
            "in their cells or a terminal; each prints what Docker answered.",
        )
    latest = next((i for i in images if LAB_TAG in i.get("imageTags", [])), None)
    sample = local_sample()
    if latest is None:
        tags = sorted({t for i in images for t in i.get("imageTags", [])})
        shown = ", ".join(tags) if tags else "untagged images only"
        return Verdict.wrong(
            f"{name} has no image tagged {LAB_TAG!r} (found: {shown})",
            f"The lab's tag is {LAB_TAG!r}: `docker tag {LAB_SAMPLE_IMAGE} $REPOSITORY` "
            "(no tag after the URI means latest), then `docker push $REPOSITORY`.",
        )
    digest = latest["imageDigest"]
    if sample is None:
        return Verdict.ok(
            f"{name}:{LAB_TAG} is in the registry ({digest[:19]}…); not compared with the "
            "sample image: it is not on this machine (or Docker is not reachable)"
        )
    if not sample.matches(digest, _config_digest(lab, digest)):
        return Verdict.wrong(
            f"{name}:{LAB_TAG} ({digest[:19]}…) is not the sample image {LAB_SAMPLE_IMAGE}",
            f"Something else was pushed as {LAB_TAG}. Tag the sample again, "
            f"`docker tag {LAB_SAMPLE_IMAGE} $REPOSITORY` (step 22), and push again (step 25).",
        )
    return Verdict.ok(
        f"{name}:{LAB_TAG} is the sample image you tagged ({digest[:19]}…, the digest Docker "
        "recorded when it pushed)"
    )


# -- the lab's lines, for the catch-up and the digest cross-check ---------------------------


def push_address(lab: Lab, repository: str) -> str:
    """Where ``docker tag``/``login``/``push`` send the repository URI ``repository``.

    The URI itself, except on an AWS-compatible endpoint whose ECR names AWS's registry
    host (``ACCOUNT.dkr.ecr.REGION.amazonaws.com``, which does not resolve here) while the
    endpoint serves the registry API on its own port: then it says so and returns the same
    repository on that port."""
    address = endpoint.push_address(lab, repository)
    if address != repository:
        print(
            f"This endpoint's repository URI names AWS's registry ({ecr.registry_host(repository)}"
            f"), which does not resolve here; the endpoint serves the registry itself at "
            f"{ecr.registry_host(address)}, so Docker pushes to {address}."
        )
    return address


#: The shell variable of step 19, as the notebook's ``%%bash`` cells and ``!`` lines see it.
REPOSITORY_VARIABLE = "REPOSITORY"
_STATE_KEY = "task2_repository"


def use_repository(lab: Lab, uri: Any) -> str:
    """Step 21, ``REPOSITORY=your-repository-uri``: check what the learner pasted (says
    what differs: a tag on the end, ``https://``, a typo), then set ``$REPOSITORY`` for
    the shell lines of this kernel, and remember it so that after a kernel restart the
    setup cell sets it again. Returns the address Docker pushes to."""
    import os

    from labkit.state import update_state

    address = push_address(lab, ecr.check_repository_uri(lab, uri))
    os.environ[REPOSITORY_VARIABLE] = address
    update_state(lambda state: state.update({_STATE_KEY: address}))
    print(f"{REPOSITORY_VARIABLE}={address}")
    return address


def on_open(lab: Lab) -> None:
    """Notebook 02's setup: ``$REPOSITORY`` as the learner set it before (exercise 2.1),
    if it still names this lab's repository; else nothing (2.1 sets it)."""
    import os

    from labkit.state import load_state

    remembered = load_state().get(_STATE_KEY)
    if not isinstance(remembered, str) or ecr.find_repository(lab) is None:
        return
    if remembered != endpoint.push_address(lab, ecr.repository_uri(lab)):
        return
    os.environ[REPOSITORY_VARIABLE] = remembered
    print(f"{REPOSITORY_VARIABLE}={remembered} (as you set it in exercise 2.1)")


def push_with_lab_lines(lab: Lab, repository: str) -> None:
    """Steps 18–25 as the notebook's cells run them: the sample image, tag, login, push,
    leaving the learner's own lines to do: the login goes to a Docker config of its own
    (deleted after the push), and the ``$REPOSITORY`` tag goes again if this made it.
    Exercise 2.1's catch-up mark reads both (see :func:`_learners_lines`)."""
    import tempfile

    from labkit.images import ensure_sample_image
    from labkit.shell import docker_login, sh

    print(ensure_sample_image())
    address = push_address(lab, repository)
    env = {"REPOSITORY": address}
    tagged_before = _tagged_locally(address)
    sh(f"docker tag {LAB_SAMPLE_IMAGE} $REPOSITORY", env=env, check=True)
    with tempfile.TemporaryDirectory(prefix="labkit-docker-config-") as config:
        docker_login(lab, registry=ecr.registry_host(address), docker_config=config)
        sh("docker push $REPOSITORY", env={**env, "DOCKER_CONFIG": config}, check=True)
    _remember_push(address)
    print(
        "(This login went to a Docker config of its own, now deleted"
        + (", and the tag it made goes again" if tagged_before is False else "")
        + ": your own Docker config holds no login from it.)"
    )
    if tagged_before is False:
        sh("docker image rm $REPOSITORY", env=env)  # untags: the sample keeps its own name


#: The state file's record of the catch-up's push: Docker forgets its digest with the tag.
_PUSH_KEY = "task2_catch_up_push"


def _remember_push(address: str) -> None:
    from labkit.state import update_state

    sample = local_sample()
    digests = [d for d in (sample.repo_digests if sample else ()) if d.startswith(f"{address}@")]
    if not digests:
        return
    try:
        update_state(lambda state: state.update({_PUSH_KEY: digests[0]}))
    except OSError:  # compare_digests then says it was not pushed from here
        pass


def _tagged_locally(address: str) -> bool | None:
    """Is ``address:latest`` a local image (the learner's step 22)? None: Docker is not
    reachable."""
    import docker.errors

    from labkit.errors import DockerUnavailable

    try:
        docker_client().images.get(f"{address}:{LAB_TAG}")
    except docker.errors.ImageNotFound:
        return False
    except (DockerUnavailable, docker.errors.DockerException):
        return None
    return True


#: How long a Docker credential helper may take to answer ``get`` (Docker Desktop's asks
#: the running app; a helper that hangs must not hang the learner's check).
CREDENTIAL_HELPER_TIMEOUT_S = 5.0

_HELPER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _docker_login_entry(host: str) -> str | None:
    """The user's login for ``host`` as ``docker login`` left it (``$DOCKER_CONFIG`` or
    ``~/.docker``): "none", or a short hash of the credential, which each login's new
    token changes. The secret itself is never kept or shown. None: it cannot be read.

    Docker keeps it in one of three places, and so this looks where Docker would: the
    host's ``credHelpers`` entry, else the global ``credsStore`` (Docker Desktop's
    ``desktop``, ``osxkeychain``, ``wincred``, ``pass``…), both asked through the helper
    program; without either, inline in ``auths`` (a helper leaves only ``{}`` there)."""
    import hashlib
    import os
    from pathlib import Path

    folder = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    try:
        config = json.loads((Path(folder) / "config.json").read_text())
    except FileNotFoundError:
        return "none"
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    helpers, store = config.get("credHelpers"), config.get("credsStore")
    helper = helpers.get(host) if isinstance(helpers, dict) else None
    helper = helper or (store if isinstance(store, str) else None)
    if helper:
        return _credential_helper_entry(helper, host)
    auths = config.get("auths")
    if not isinstance(auths, dict):
        return "none"
    # Docker's own lookup: the host itself, else a key naming it with a scheme or a path.
    key = host if host in auths else next((k for k in auths if _hostname(k) == host), None)
    if key is None:
        return "none"
    entry = json.dumps(auths[key], sort_keys=True).encode()
    return f"auth:{hashlib.sha256(entry).hexdigest()[:16]}"


def _hostname(address: str) -> str:
    """A registry address as Docker names its host: no scheme, no path."""
    for scheme in ("https://", "http://"):
        address = address.removeprefix(scheme)
    return address.split("/", 1)[0]


def _credential_helper_entry(helper: str, host: str) -> str | None:
    """Ask ``docker-credential-<helper>`` for ``host`` as Docker does (``get``, the server
    address on stdin, JSON with ServerURL, Username, Secret on stdout): a short hash of
    its answer, "none" when it has no login for the host (it exits non-zero), None when
    it cannot answer (not found, a bad name, no JSON, too slow)."""
    import hashlib
    import shutil
    import subprocess
    from pathlib import Path

    if not _HELPER_NAME.fullmatch(helper):
        return None
    name = f"docker-credential-{helper}"
    # Docker Desktop's per-user install keeps its helpers in ~/.docker/bin, which a
    # JupyterLab started from the Dock may not have on its PATH.
    program = shutil.which(name) or shutil.which(name, path=str(Path.home() / ".docker" / "bin"))
    if program is None:
        return None  # not found from here: the login cannot be read (not "no login")
    # Today's docker CLI names the host alone; older ones kept what was typed (https://…).
    for server in (host, f"https://{host}"):
        try:
            answer = subprocess.run(
                [program, "get"],
                input=server,
                capture_output=True,
                text=True,
                timeout=CREDENTIAL_HELPER_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            return None
        except OSError:
            return "none"
        if answer.returncode != 0:  # "credentials not found in native keychain"
            continue
        try:
            credential = json.loads(answer.stdout)
        except ValueError:
            return None
        if not isinstance(credential, dict):
            return None
        digest = hashlib.sha256(json.dumps(credential, sort_keys=True).encode()).hexdigest()
        return f"helper:{helper}:{digest[:16]}"
    return "none"


def compare_digests(lab: Lab | None = None) -> bool:
    """Print the digest ECR reports for ``latest`` beside the one Docker recorded when it
    pushed (RepoDigests of the local sample image); True when they are the same."""
    lab = lab or current_lab()
    image = ecr.find_image(lab, LAB_TAG)
    if image is None:
        print(f"No image tagged {LAB_TAG} in {lab.repository_name} yet: nothing to compare.")
        return False
    from labkit.state import load_state

    uri = endpoint.push_address(lab, ecr.repository_uri(lab))  # where Docker pushed it
    sample = local_sample()
    recorded = [d for d in (sample.repo_digests if sample else ()) if d.startswith(f"{uri}@")]
    by = "at push        "
    caught_up = load_state().get(_PUSH_KEY)
    if not recorded and isinstance(caught_up, str) and caught_up.startswith(f"{uri}@"):
        recorded, by = [caught_up], "at the catch-up's push"  # it removed its tag since
    pushed = recorded[0].split("@", 1)[1] if recorded else "(none: not pushed from here)"
    same = image["imageDigest"] == pushed
    print(f"digest from ECR (DescribeImages)      : {image['imageDigest']}")
    print(f"digest Docker recorded {by}: {pushed}")
    print(f"same image: {'yes' if same else 'no'}")
    return same


class _PushExercise(Exercise):
    def catch_up(self, lab: Lab) -> dict[str, Any]:
        """Look the URI up (the solution cell), then run steps 18–25."""
        namespace = super().catch_up(lab)
        push_with_lab_lines(lab, namespace["REPOSITORY"])
        return namespace


def _learners_lines(lab: Lab) -> str | None:
    """What the learner's three lines leave, wherever they ran (cells, a terminal): the
    push the registry holds as ``latest``, the local ``$REPOSITORY`` tag, and a login in
    their Docker config or the credential store it names. A second push of the same
    image may leave the registry as it was; the tag and the login, which the catch-up
    leaves to the learner, change. None: Docker or the login cannot be read (the mark
    stays)."""
    image = ecr.find_image(lab, LAB_TAG)
    pushed = f"{image['imageDigest']} {image.get('imagePushedAt')}" if image else None
    address = endpoint.push_address(lab, ecr.repository_uri(lab))
    tagged = _tagged_locally(address)
    login = _docker_login_entry(ecr.registry_host(address))
    if tagged is None or login is None:
        return None
    return f"{pushed} tagged={tagged} login={login}"


q1 = _PushExercise(
    task=2,
    number=1,
    title="the sample image in your repository",
    evaluate_fn=_image_pushed,
    hints=(
        "Paste the repository URI from Task 1 (step 8) between quotes in REPOSITORY. Then "
        "the guide's three lines, each in its %%bash cell: docker tag, the aws ecr "
        "get-login-password | docker login pipe, docker push (or the same lines in a "
        "JupyterLab terminal: the check reads Docker and the registry, not the cells).",
        "docker tag amazon/amazon-ecs-sample:latest $REPOSITORY. The login's last word is "
        "your registry: $REPOSITORY up to the first / (bash: ${REPOSITORY%%/*}), where the "
        "guide has ACCOUNTID.dkr.ecr.us-west-2.amazonaws.com; --region $AWS_REGION.",
        "aws ecr get-login-password --region $AWS_REGION | docker login --username AWS "
        "--password-stdin ${REPOSITORY%%/*}\ndocker push $REPOSITORY",
    ),
    solution_=Solution(
        file="task2_q1_repository_uri.py",
        cli="REPOSITORY=$(aws ecr describe-repositories --repository-names myrepo "
        "--query 'repositories[0].repositoryUri' --output text)\n"
        f"docker tag {LAB_SAMPLE_IMAGE} $REPOSITORY\n"
        "aws ecr get-login-password --region us-west-2 | docker login --username AWS "
        '--password-stdin "${REPOSITORY%%/*}"\n'
        "docker push $REPOSITORY",
        console="No console form: steps 17–25 are typed in a terminal on a container "
        "instance (Session Manager). The console's Amazon ECR → myrepo → View push "
        "commands lists the same login, tag and push lines.",
    ),
    fingerprint_fn=_learners_lines,
    own_work="Type your own lines, in 2.1's %%bash cells or a terminal: docker tag, the "
    "aws ecr get-login-password | docker login pipe, docker push (the catch-up kept its "
    "login apart and removed its tag, so yours are what this check sees; the REPOSITORY "
    "cell alone does not count)",
)

TASK = Task(number=2, title="image pushed", exercises=(q1,))

quiz = Quiz(
    2,
    (
        Question(
            "Why does docker login name the registry host, not your repository URI?",
            {
                "a": "Docker logs in to a registry, one per account and region; the token "
                "is good for every repository in it. The host is the URI's part before "
                "the first /.",
                "b": "The repository URI is secret.",
                "c": "docker login takes any URI; the host is just shorter.",
            },
            "a",
            "On AWS that host is ACCOUNTID.dkr.ecr.REGION.amazonaws.com, hence step 24's "
            "ACCOUNTID swap; here it is the sandbox's 127.0.0.1:PORT.",
            wrong={"c": "Docker stores credentials per registry host, never per repository."},
        ),
        Question(
            "docker push $REPOSITORY names no tag. Which tag does the registry get?",
            {"a": "none: the image is pushed untagged", "b": "latest", "c": "v1"},
            "b",
            "A reference without a tag means :latest, for docker tag, push and pull alike; "
            "that is why Task 3's image line ends in :latest.",
        ),
        Question(
            "How do you know the image in ECR is the very one you tagged?",
            {
                "a": "Its tag is latest.",
                "b": "Its digest (the hash of its manifest) equals the one Docker recorded "
                "when it pushed.",
                "c": "It was pushed less than a minute ago.",
            },
            "b",
            "A tag is a movable name; a digest names exactly one image's content.",
            wrong={"a": "Anyone can push another image as latest: a tag moves."},
        ),
    ),
)
