"""The sandbox's image registry: a real CNCF distribution registry, with ECR's rules.

- The registry (Debian's ``docker-registry`` as a host process, or the ``registry:2``
  image as a container: see :mod:`labkit.sandbox.registry_runner`) stores the layers and
  manifests and speaks the OCI distribution API on ``127.0.0.1:<registry_port>``; Docker
  trusts a loopback registry over plain HTTP, so stock ``docker tag``/``push`` reach it.
- Access goes through the registry's token auth, whose realm is a sandbox route
  (``/_labkit/registry/token``). That route plays ECR: it accepts the password from
  ``GetAuthorizationToken`` (HMAC-signed, expiring, tied to a principal), refuses
  anonymous, wrong and expired ones, and grants a repository's actions to a principal
  the way ECR would: the account's own user may do everything; any other principal
  (the container instance role) only what the repository policy allows it.
- ECR's API is moto's, kept in step with the registry: the repository URI points at the
  registry, images are read from the registry when ECR lists them (true digests, tags
  and sizes), and ``BatchDeleteImage``/``DeleteRepository`` really delete.
- Repositories and their policies are saved to ``ecr.json`` so a restarted sandbox lists
  the images it already holds.
"""

from __future__ import annotations

import base64
import datetime as dt
import fnmatch
import functools
import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from werkzeug.wrappers import Request, Response

from labkit.sandbox.api import json_response
from labkit.sandbox.context import (
    SandboxContext,
    write_private,
)
from labkit.sandbox.registry_runner import (
    REGISTRY_SERVICE,
    TOKEN_ISSUER,
    RegistryRunner,
    make_runner,
)

#: Lifetime of the short bearer tokens the registry checks (Docker asks again as needed).
BEARER_TTL_SECONDS = 300

MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)

#: The ECR actions each registry action needs, as IAM evaluates a repository policy
#: (the ones ECR's documentation lists for pulling, pushing and deleting images).
REGISTRY_ACTION_NEEDS: dict[str, tuple[str, ...]] = {
    "pull": ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"),
    "push": (
        "ecr:InitiateLayerUpload",
        "ecr:UploadLayerPart",
        "ecr:CompleteLayerUpload",
        "ecr:PutImage",
        "ecr:BatchCheckLayerAvailability",
    ),
    "delete": ("ecr:BatchDeleteImage",),
}
# The registry's "*" means every action; it is granted only to who may do all of them.
REGISTRY_ACTION_NEEDS["*"] = tuple(
    dict.fromkeys(a for needs in list(REGISTRY_ACTION_NEEDS.values()) for a in needs)
)


#: urllib without any proxy: the registry is on loopback, and its tokens stay there.
_LOOPBACK_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# -- signing keys -----------------------------------------------------------------------


class _BearerSigner:
    """Signs the JWTs the registry trusts: RS256, with the signing certificate as ``x5c``.

    The registry checks an ``x5c`` chain against its ``rootcertbundle``. Distribution 2.8
    also accepts a libtrust key id (``kid``) and v3 does not; ``x5c`` works with both.
    """

    def __init__(self, home: Path) -> None:
        key_path, cert_path = home / "token.key", home / "token.pem"
        if key_path.exists() and cert_path.exists():
            _tighten(key_path)
            self.key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        else:
            self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TOKEN_ISSUER)])
            now = dt.datetime.now(dt.UTC)
            cert = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(self.key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=3650))
                .sign(self.key, hashes.SHA256())
            )
            write_private(
                key_path,
                self.key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
            cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.cert_path = cert_path
        # x5c holds standard (not URL-safe) base64 of the DER certificate, leaf first.
        self.x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]

    def sign(self, subject: str, access: list[dict[str, Any]]) -> str:
        now = int(time.time())
        claims = {
            "iss": TOKEN_ISSUER,
            "sub": subject,
            "aud": REGISTRY_SERVICE,
            "iat": now,
            "nbf": now - 5,
            "exp": now + BEARER_TTL_SECONDS,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"x5c": self.x5c})


def _tighten(path: Path) -> None:
    """A key file an older kit left readable by others becomes owner-only."""
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)


class EcrTokens:
    """ECR authorization tokens: ``base64("AWS:" + password)``, signed, expiring.

    The password carries its principal and expiry and an HMAC over both, so tokens stay
    valid across a sandbox restart (the key is kept in the sandbox home) and need no table.
    """

    def __init__(self, home: Path, ttl_seconds: int) -> None:
        key_path = home / "ecr-token.key"
        if key_path.exists():
            _tighten(key_path)
        else:
            write_private(key_path, secrets.token_bytes(32))
        self._key = key_path.read_bytes()
        self.ttl_seconds = ttl_seconds

    def issue(self, principal_arn: str) -> tuple[str, dt.datetime]:
        expires = int(time.time()) + self.ttl_seconds
        payload = _b64url(json.dumps({"p": principal_arn, "exp": expires}).encode())
        mac = _b64url(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())
        password = f"{payload}.{mac}"
        token = base64.b64encode(f"AWS:{password}".encode()).decode()
        return token, dt.datetime.fromtimestamp(expires, dt.UTC)

    def credentials(self, principal_arn: str) -> tuple[str, str]:
        """``(username, password)`` as ``docker login`` takes them."""
        token, _ = self.issue(principal_arn)
        user, password = base64.b64decode(token).decode().split(":", 1)
        return user, password

    def principal(self, username: str, password: str) -> str:
        """The principal a login is for; raises ``PermissionError`` saying why not."""
        if username != "AWS":
            raise PermissionError("the user name must be AWS, as with ECR")
        payload, _, mac = password.partition(".")
        expected = _b64url(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())
        if not payload or not hmac.compare_digest(mac, expected):
            raise PermissionError("the password is not a valid authorization token")
        claims = json.loads(_b64url_decode(payload))
        if claims["exp"] < time.time():
            raise PermissionError(
                "your authorization token has expired; reauthenticate and try again"
            )
        return claims["p"]


# -- policy evaluation ------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _principal_matches(statement: dict[str, Any], principal_arn: str) -> bool:
    principal = statement.get("Principal")
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    for arn in _as_list(principal.get("AWS")):
        if arn == "*" or arn == principal_arn:
            return True
    return False


def _action_matches(statement: dict[str, Any], action: str) -> bool:
    return any(
        fnmatch.fnmatchcase(action.lower(), pattern.lower())
        for pattern in _as_list(statement.get("Action"))
    )


def policy_allows(policy_text: str | None, principal_arn: str, action: str) -> bool:
    """Whether a repository policy allows ``action`` to ``principal_arn`` (Deny wins)."""
    if not policy_text:
        return False
    statements = _as_list(json.loads(policy_text).get("Statement"))
    relevant = [
        s for s in statements if _principal_matches(s, principal_arn) and _action_matches(s, action)
    ]
    if any(s.get("Effect") == "Deny" for s in relevant):
        return False
    return any(s.get("Effect") == "Allow" for s in relevant)


# -- the registry's HTTP API, as the sandbox itself ---------------------------------------


class _RegistryAdmin:
    """Talks to the registry with a token that may do anything (the sandbox's own)."""

    def __init__(self, base_url: str, signer: _BearerSigner) -> None:
        self.base_url = base_url
        self.signer = signer

    def _request(
        self,
        method: str,
        repo: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        token = self.signer.sign(
            "labkit-sandbox", [{"type": "repository", "name": repo, "actions": ["*"]}]
        )
        request = urllib.request.Request(
            f"{self.base_url}/v2/{repo}/{path}", data=body, method=method
        )
        request.add_header("Authorization", f"Bearer {token}")
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        try:
            with _LOOPBACK_OPENER.open(request, timeout=10) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def tags(self, repo: str) -> list[str]:
        status, _, body = self._request("GET", repo, "tags/list")
        if status == 404:
            return []
        return sorted(json.loads(body).get("tags") or [])

    def manifest(self, repo: str, reference: str) -> tuple[str, str, bytes] | None:
        """``(digest, media type, raw manifest)`` or None when it is not there."""
        status, headers, body = self._request(
            "GET", repo, f"manifests/{reference}", headers={"Accept": ", ".join(MANIFEST_TYPES)}
        )
        if status != 200:
            return None
        digest = headers.get("Docker-Content-Digest") or (
            "sha256:" + hashlib.sha256(body).hexdigest()
        )
        return digest, headers.get("Content-Type", ""), body

    def put_manifest(self, repo: str, tag: str, media_type: str, raw: bytes) -> None:
        self._request(
            "PUT", repo, f"manifests/{tag}", body=raw, headers={"Content-Type": media_type}
        )

    def delete_manifest(self, repo: str, digest: str) -> None:
        self._request("DELETE", repo, f"manifests/{digest}")


# -- the component ----------------------------------------------------------------------


class Registry:
    """Starts the registry process and keeps moto's ECR in step with it."""

    def __init__(self, ctx: SandboxContext, api_url: str) -> None:
        self.ctx = ctx
        settings = ctx.settings
        self.home = settings.home
        self.host = settings.registry_host
        self.api_url = api_url
        self.signer = _BearerSigner(self.home)
        self.tokens = EcrTokens(self.home, settings.token_ttl_seconds)
        self.admin = _RegistryAdmin(f"http://{self.host}", self.signer)
        self.runner: RegistryRunner | None = None
        self._state_path = self.home / "ecr.json"
        self._state_lock = threading.Lock()
        self.user_arn = f"arn:aws:iam::{ctx.account_id}:user/moto"
        ctx.registry_credentials = self.tokens.credentials
        ctx.pull_denial_reason = self.pull_denial_reason

    # process ---------------------------------------------------------------------------
    def start(self) -> None:
        """Run the registry: the host binary, or a ``registry:2`` container (see
        :mod:`labkit.sandbox.registry_runner` for which, and why)."""
        self.runner = make_runner(self.ctx.settings, self.ctx.docker, self.signer.cert_path)
        self.runner.start()

    def stop(self) -> None:
        if self.runner is not None:
            self.runner.stop()
        if _ACTIVE.get("registry") is self:
            _ACTIVE["registry"] = None  # moto's ECR behaves as plain moto again

    @property
    def running(self) -> bool:
        return self.runner is not None and self.runner.running

    # token realm ----------------------------------------------------------------------
    def token_route(self, request: Request) -> Response:
        """Docker's token request: Basic auth with the ECR password, scopes in the query."""
        auth = request.authorization
        if auth is None or auth.type != "basic":
            return _registry_error(401, "no basic auth credentials")
        try:
            principal = self.tokens.principal(auth.username or "", auth.password or "")
        except PermissionError as exc:
            return _registry_error(401, str(exc))
        access = []
        for scope in request.args.getlist("scope"):
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind != "repository" or not name:
                continue
            # Each action on its own: a principal that may only pull gets "pull" only.
            granted = [a for a in actions.split(",") if self.may(principal, name, a)]
            access.append({"type": "repository", "name": name, "actions": granted})
        token = self.signer.sign(principal, access)
        return json_response(
            {
                "token": token,
                "access_token": token,
                "expires_in": BEARER_TTL_SECONDS,
                "issued_at": dt.datetime.now(dt.UTC).isoformat(),
            }
        )

    def may(self, principal_arn: str, repository: str, registry_action: str) -> bool:
        return not self.denied_actions(principal_arn, repository, registry_action)

    def denied_actions(
        self, principal_arn: str, repository: str, registry_action: str
    ) -> list[str]:
        """The ECR actions ``registry_action`` needs that the principal may not do.

        An unknown registry action, or a repository that does not exist, is refused.
        """
        needed = REGISTRY_ACTION_NEEDS.get(registry_action)
        with self.ctx.lock:
            repo = self.ctx.ecr().repositories.get(repository)
            if repo is None or needed is None:
                return list(needed or ("ecr:*",))
            if principal_arn == self.user_arn:
                return []  # the account's own administrator, as the learner is in the lab
            return [a for a in needed if not policy_allows(repo.policy, principal_arn, a)]

    def pull_denial_reason(self, principal_arn: str, repository: str) -> str | None:
        """ECR's AccessDenied sentence for a refused pull, or None when it is allowed."""
        denied = self.denied_actions(principal_arn, repository, "pull")
        if not denied:
            return None
        role = principal_arn.rsplit("/", 1)[-1]
        assumed = f"arn:aws:sts::{self.ctx.account_id}:assumed-role/{role}/container-instance"
        resource = f"arn:aws:ecr:{self.ctx.region}:{self.ctx.account_id}:repository/{repository}"
        with self.ctx.lock:
            exists = repository in self.ctx.ecr().repositories
        if not exists:
            return f"The repository with name '{repository}' does not exist in the registry."
        action = denied[0]
        return (
            f"User: {assumed} is not authorized to perform: {action} on resource: "
            f"{resource} because no resource-based policy allows the {action} action"
        )

    def caller_arn(self, access_key_id: str | None) -> str:
        """Whom ``GetAuthorizationToken`` was called as: a role assumed through STS, as
        the instance role is on a container instance, or else the account's user."""
        from moto.sts.models import sts_backends
        from moto.utilities.utils import get_partition

        if access_key_id:
            sts = sts_backends[self.ctx.account_id][get_partition(self.ctx.region)]
            assumed = sts.get_assumed_role_from_access_key(access_key_id)
            if assumed is not None:
                return assumed.role_arn
        return self.user_arn

    def token_ttl_route(self, request: Request) -> Response:
        """Change the lifetime of tokens issued from now on (lets tests see one expire)."""
        if request.method == "POST":
            self.tokens.ttl_seconds = int(request.get_json(force=True)["seconds"])
        return json_response({"seconds": self.tokens.ttl_seconds})

    # ECR kept in step ---------------------------------------------------------------------
    def sync(self, repository: str) -> None:
        """Make moto's image list for ``repository`` what the registry really holds."""
        from moto.ecr.models import Image

        ecr = self.ctx.ecr()
        repo = ecr.repositories.get(repository)
        if repo is None:
            return
        tags = self.admin.tags(repository)
        by_digest: dict[str, list[str]] = {}
        manifests: dict[str, tuple[str, bytes]] = {}
        for tag in tags:
            found = self.admin.manifest(repository, tag)
            if found:
                digest, media_type, raw = found
                by_digest.setdefault(digest, []).append(tag)
                manifests[digest] = (media_type, raw)
        # Untagged images (a tag moved on) are only reachable by digest: remember them.
        known = set(self._load_state().get(repository, {}).get("digests", []))
        for digest in known - set(manifests):
            found = self.admin.manifest(repository, digest)
            if found:
                manifests[digest] = (found[1], found[2])
        previous = {image.get_image_digest(): image for image in repo.images}
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
                image.image_pushed_at = previous[digest].image_pushed_at
            image.get_image_size_in_bytes = functools.partial(_manifest_size, raw)
            images.append(image)
        repo.images = images
        self._remember_digests(repository, set(manifests))

    def reconcile_deletions(self, repository: str, before: dict[str, set[str]]) -> None:
        """After moto applied BatchDeleteImage, make the registry match moto."""
        repo = self.ctx.ecr().repositories.get(repository)
        after = {i.get_image_digest(): set(i.image_tags) for i in (repo.images if repo else [])}
        for digest, tags in before.items():
            if digest in after and after[digest] == tags:
                continue
            found = self.admin.manifest(repository, digest)
            self.admin.delete_manifest(repository, digest)
            # The distribution API cannot drop one tag: delete, then put back the rest.
            if found and digest in after:
                for tag in sorted(after[digest]):
                    self.admin.put_manifest(repository, tag, found[1], found[2])
        self.sync(repository)

    def delete_all(self, repository: str) -> None:
        for digest in self._load_state().get(repository, {}).get("digests", []):
            self.admin.delete_manifest(repository, digest)

    # persistence -----------------------------------------------------------------------
    def _load_state(self) -> dict[str, Any]:
        with self._state_lock:
            if self._state_path.exists():
                return json.loads(self._state_path.read_text())
            return {}

    def _write_state(self, state: dict[str, Any]) -> None:
        with self._state_lock:
            tmp = self._state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(state, indent=1, default=str))
            tmp.replace(self._state_path)

    def _remember_digests(self, repository: str, digests: set[str]) -> None:
        state = self._load_state()
        if repository in state:
            state[repository]["digests"] = sorted(digests)
            self._write_state(state)

    def save_repositories(self) -> None:
        """Write every repository's settings and policy (not images: the registry has them)."""
        ecr = self.ctx.ecr()
        old = self._load_state()
        state = {}
        for name, repo in ecr.repositories.items():
            state[name] = {
                "created_at": repo.created_at,
                "policy": repo.policy,
                "image_tag_mutability": repo.image_tag_mutability,
                "scan_on_push": bool(repo.image_scanning_configuration.get("scanOnPush")),
                # ECR's tagger keys its list "tags" (other services' say "Tags").
                "tags": ecr.tagger.list_tags_for_resource(repo.arn).get("tags", []),
                "digests": old.get(name, {}).get("digests", []),
            }
        self._write_state(state)

    def restore_repositories(self) -> list[str]:
        """Re-create the repositories saved by an earlier sandbox; returns their names."""
        ecr = self.ctx.ecr()
        restored = []
        for name, saved in self._load_state().items():
            if name in ecr.repositories:
                continue
            repo = ecr.create_repository(
                repository_name=name,
                registry_id=None,
                encryption_config=None,
                image_scan_config={"scanOnPush": saved.get("scan_on_push", False)},
                image_tag_mutability=saved.get("image_tag_mutability") or "MUTABLE",
                tags=saved.get("tags") or [],
            )
            repo.policy = saved.get("policy")
            if saved.get("created_at"):
                repo.created_at = dt.datetime.fromisoformat(str(saved["created_at"]))
            restored.append(name)
            self.sync(name)
        self.save_repositories()  # create_repository saved before the policy was put back
        return restored

    # moto patches ----------------------------------------------------------------------
    def install_ecr_patches(self) -> None:
        """Route moto's ECR through this registry (only while this sandbox is active)."""
        from moto.ecr.models import ECRBackend
        from moto.ecr.responses import ECRResponse

        _ACTIVE["registry"] = self
        if _ACTIVE.get("patched"):
            return
        _ACTIVE["patched"] = True

        def wrap(name: str, before: str | None = None, after: str | None = None) -> None:
            original = getattr(ECRBackend, name)

            @functools.wraps(original)
            def patched(backend: Any, *args: Any, **kwargs: Any) -> Any:
                registry: Registry | None = _ACTIVE.get("registry")
                if registry is None or backend is not registry.ctx.ecr():
                    return original(backend, *args, **kwargs)
                return getattr(registry, f"_ecr_{name}")(original, backend, *args, **kwargs)

            setattr(ECRBackend, name, patched)

        for name in (
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
        ):
            wrap(name)

        original_token = ECRResponse.get_authorization_token

        def get_authorization_token(response: Any) -> Any:
            registry: Registry | None = _ACTIVE.get("registry")
            if registry is None:
                return original_token(response)
            from moto.core.responses import ActionResult

            token, expires = registry.tokens.issue(registry.caller_arn(response.get_access_key()))
            return ActionResult(
                {
                    "authorizationData": [
                        {
                            "authorizationToken": token,
                            "expiresAt": expires,
                            "proxyEndpoint": f"http://{registry.host}",
                        }
                    ]
                }
            )

        ECRResponse.get_authorization_token = get_authorization_token

    # Each ``_ecr_<name>`` receives moto's original method and the call's arguments.
    def _ecr_create_repository(self, original: Any, backend: Any, *a: Any, **kw: Any) -> Any:
        repo = original(backend, *a, **kw)
        repo.uri = f"{self.host}/{repo.name}"
        self.save_repositories()
        return repo

    def _ecr_delete_repository(self, original: Any, backend: Any, *a: Any, **kw: Any) -> Any:
        name = kw.get("repository_name", a[0] if a else None)
        self.sync(name)
        repo = original(backend, *a, **kw)
        self.delete_all(name)
        self.save_repositories()
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
        self.reconcile_deletions(name, before)
        return result

    def _saved(self, original: Any, backend: Any, *a: Any, **kw: Any) -> Any:
        result = original(backend, *a, **kw)
        self.save_repositories()
        return result

    _ecr_set_repository_policy = _saved
    _ecr_delete_repository_policy = _saved
    _ecr_tag_resource = _saved
    _ecr_untag_resource = _saved

    def _ecr_put_image(self, original: Any, backend: Any, *a: Any, **kw: Any) -> Any:
        # PutImage through the API would store a manifest the registry never saw.
        from moto.ecr.exceptions import InvalidParameterException

        raise InvalidParameterException(
            "In the labkit sandbox, push images with `docker push` to the repository URI; "
            "PutImage is not supported."
        )


#: The registry moto's patched ECR defers to (one sandbox per process).
_ACTIVE: dict[str, Any] = {}


def _manifest_size(raw: bytes) -> int:
    """ECR's imageSizeInBytes: the compressed layers (and config) a pull downloads."""
    manifest = json.loads(raw)
    size = sum(layer.get("size", 0) for layer in manifest.get("layers", []))
    return size + manifest.get("config", {}).get("size", 0)


def _registry_error(status: int, message: str) -> Response:
    body = {"errors": [{"code": "UNAUTHORIZED", "message": message, "detail": None}]}
    response = json_response(body, status=status)
    response.headers["WWW-Authenticate"] = 'Basic realm="labkit-sandbox"'
    return response
