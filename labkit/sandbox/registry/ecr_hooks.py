"""Moto's ECR kept in step with the registry (only while this sandbox is active).

The repository URI points at the registry; images are read from the registry when ECR
lists them (true digests, tags and sizes); ``BatchDeleteImage`` and ``DeleteRepository``
really delete; every change of a repository is saved; ``GetAuthorizationToken`` issues the
sandbox's tokens for the calling principal; ``PutImage`` is refused (``docker push`` it).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from moto.backends import get_backend
from moto.core.responses import ActionResult
from moto.ecr.exceptions import InvalidParameterException, ServiceException
from moto.ecr.models import ECRBackend, Image
from moto.ecr.responses import ECRResponse
from moto.utilities.utils import get_partition

from labkit.sandbox.context import SandboxContext
from labkit.sandbox.registry.access import RegistryAccess
from labkit.sandbox.registry.client import RegistryClient, RegistryUnavailable
from labkit.sandbox.registry.persistence import RepositoryStore
from labkit.sandbox.registry.policy import PolicyRefused, check_repository_policy

_HOOKED = (
    "create_repository",
    "delete_repository",
    "list_images",
    "describe_images",
    "batch_get_image",
    "batch_delete_image",
    "set_repository_policy",
    "delete_repository_policy",
    "tag_resource",
    "untag_resource",
    "put_image",
)


class RegistryServerException(ServiceException):
    """ECR's own error for a failure on its side: here, the registry not answering."""

    code = "ServerException"


#: The hooks moto's patched ECR defers to (one sandbox per process).
_ACTIVE: dict[str, Any] = {}


@dataclass
class EcrHooks:
    """Routes moto's ECR through the registry; ``_ecr_<name>`` replaces moto's ``<name>``."""

    ctx: SandboxContext
    client: RegistryClient
    store: RepositoryStore
    access: RegistryAccess
    host: str

    def install(self) -> None:
        _ACTIVE["hooks"] = self
        if not _ACTIVE.get("patched"):
            _ACTIVE["patched"] = True
            for name in _HOOKED:
                _hook(name)
            original = ECRResponse.get_authorization_token
            ECRResponse.get_authorization_token = lambda response: _get_authorization_token(
                response, original
            )

    def remove(self) -> None:
        if _ACTIVE.get("hooks") is self:
            _ACTIVE["hooks"] = None  # moto's ECR behaves as plain moto again

    def sync(self, repository: str) -> None:
        """Make moto's image list for ``repository`` what the registry really holds."""
        repo = self.ctx.backend("ecr").repositories.get(repository)
        if repo is None:
            return
        by_digest: dict[str, list[str]] = {}
        manifests: dict[str, tuple[str, bytes]] = {}
        for tag in self.client.tags(repository):
            found = self.client.manifest(repository, tag)
            if found:
                digest, media_type, raw = found
                by_digest.setdefault(digest, []).append(tag)
                manifests[digest] = (media_type, raw)
        # Untagged images (a tag moved on) are only reachable by digest: remember them.
        for digest in set(self.store.digests(repository)) - set(manifests):
            found = self.client.manifest(repository, digest)
            if found:
                manifests[digest] = (found[1], found[2])
        previous = {image.get_image_digest(): image.image_pushed_at for image in repo.images}
        # After a restart moto has no images yet: their push times come from ecr.json.
        saved_pushed_at = self.store.pushed_at(repository)
        images = []
        for digest, (media_type, raw) in manifests.items():
            image_tags = sorted(by_digest.get(digest, []))
            image = Image(
                self.ctx.account_id,
                image_tags[0] if image_tags else None,
                raw.decode(),
                repository,
                image_manifest_mediatype=media_type,
                digest=digest,
            )
            image.image_tags = image_tags
            if digest in previous:
                image.image_pushed_at = previous[digest]
            elif digest in saved_pushed_at:
                image.image_pushed_at = saved_pushed_at[digest]
            image.get_image_size_in_bytes = functools.partial(_manifest_size, raw)
            images.append(image)
        repo.images = images
        self.store.remember_images(
            repository, {image.get_image_digest(): image.image_pushed_at for image in images}
        )

    def _reconcile_deletions(self, repository: str, before: dict[str, set[str]]) -> None:
        """After moto applied BatchDeleteImage, make the registry match moto."""
        repo = self.ctx.backend("ecr").repositories.get(repository)
        after = {i.get_image_digest(): set(i.image_tags) for i in (repo.images if repo else [])}
        for digest, tags in before.items():
            if digest in after and after[digest] == tags:
                continue
            found = self.client.manifest(repository, digest)
            self.client.delete_manifest(repository, digest)
            # The distribution API cannot drop one tag: delete, then put back the rest.
            if found and digest in after:
                for tag in sorted(after[digest]):
                    self.client.put_manifest(repository, tag, found[1], found[2])
        self.sync(repository)

    def _ecr_create_repository(self, original: Any, backend: Any, *a: Any, **kw: Any) -> Any:
        repo = original(backend, *a, **kw)
        repo.uri = f"{self.host}/{repo.name}"
        self.store.save(backend)
        return repo

    def _ecr_delete_repository(self, original: Any, backend: Any, *a: Any, **kw: Any) -> Any:
        name = kw.get("repository_name", a[0] if a else None)
        self.sync(name)
        repo = original(backend, *a, **kw)
        for digest in self.store.digests(name):
            self.client.delete_manifest(name, digest)
        self.store.save(backend)
        return repo

    def _synced(self, original: Any, backend: Any, *a: Any, **kw: Any) -> Any:
        self.sync(kw.get("repository_name", a[0] if a else None))
        return original(backend, *a, **kw)

    _ecr_list_images = _synced
    _ecr_describe_images = _synced
    _ecr_batch_get_image = _synced

    def _ecr_batch_delete_image(self, original: Any, backend: Any, *a: Any, **kw: Any) -> Any:
        name = kw.get("repository_name", a[0] if a else None)
        self.sync(name)
        repo = backend.repositories.get(name)
        before = {i.get_image_digest(): set(i.image_tags) for i in (repo.images if repo else [])}
        result = original(backend, *a, **kw)
        self._reconcile_deletions(name, before)
        return result

    def _saved(self, original: Any, backend: Any, *a: Any, **kw: Any) -> Any:
        result = original(backend, *a, **kw)
        self.store.save(backend)
        return result

    def _ecr_set_repository_policy(self, original: Any, backend: Any, *a: Any, **kw: Any) -> Any:
        # Refused before moto stores it: what ECR refuses, and what the sandbox could not
        # evaluate (it is never stored to be quietly allowed or ignored at pull time).
        registry_id, name, text = _arguments(
            ("registry_id", "repository_name", "policy_text"), a, kw
        )
        backend._get_repository(name, registry_id)  # RepositoryNotFoundException first
        try:
            check_repository_policy(text, self.ctx.account_id, self._principal_exists)
        except PolicyRefused as exc:
            raise InvalidParameterException(str(exc)) from None
        return self._saved(original, backend, *a, **kw)

    def _principal_exists(self, arn: str) -> bool:
        """Whether a role or user ARN of this account exists in the sandbox's IAM."""
        if arn == self.access.user_arn:
            return True
        iam = get_backend("iam")[self.ctx.account_id][get_partition(self.ctx.region)]
        entities = list(iam.roles.values()) + list(iam.users.values())
        return any(entity.arn == arn for entity in entities)

    _ecr_delete_repository_policy = _saved
    _ecr_tag_resource = _saved
    _ecr_untag_resource = _saved

    def _ecr_put_image(self, original: Any, backend: Any, *a: Any, **kw: Any) -> Any:
        # PutImage through the API would store a manifest the registry never saw.
        raise InvalidParameterException(
            "In the labkit sandbox, push images with `docker push` to the repository URI; "
            "PutImage is not supported."
        )


def _hook(name: str) -> None:
    """Replace ``ECRBackend.<name>``: the active hooks handle their own backend's calls."""
    original = getattr(ECRBackend, name)

    @functools.wraps(original)
    def hooked(backend: Any, *args: Any, **kwargs: Any) -> Any:
        hooks: EcrHooks | None = _ACTIVE.get("hooks")
        if hooks is None or backend is not hooks.ctx.backend("ecr"):
            return original(backend, *args, **kwargs)
        try:
            return getattr(hooks, f"_ecr_{name}")(original, backend, *args, **kwargs)
        except RegistryUnavailable as exc:  # ECR's own error for its side failing
            message = f"{exc.what} Why: {exc.why}. What to do: {exc.fix}"
            raise RegistryServerException(message) from exc

    setattr(ECRBackend, name, hooked)


def _arguments(names: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    """moto's backend arguments by name, however they were passed."""
    return [kwargs[n] if n in kwargs else args[i] for i, n in enumerate(names)]


def _get_authorization_token(response: Any, original: Any) -> Any:
    hooks: EcrHooks | None = _ACTIVE.get("hooks")
    if hooks is None:
        return original(response)
    principal = hooks.access.caller_arn(response.get_access_key())
    token, expires = hooks.access.tokens.issue(principal)
    data = {
        "authorizationToken": token,
        "expiresAt": expires,
        "proxyEndpoint": f"http://{hooks.host}",
    }
    return ActionResult({"authorizationData": [data]})


def _manifest_size(raw: bytes) -> int:
    """ECR's imageSizeInBytes: the compressed layers (and config) a pull downloads."""
    manifest = json.loads(raw)
    size = sum(layer.get("size", 0) for layer in manifest.get("layers", []))
    return size + manifest.get("config", {}).get("size", 0)
