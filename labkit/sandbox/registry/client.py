"""The registry's HTTP API as the sandbox itself uses it, with a token that may do anything."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import urllib3

from labkit.errors import BackendError
from labkit.sandbox.registry.tokens import BEARER_TTL_SECONDS, BearerSigner

MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)

#: Seconds before a registry request is given up (it answers on loopback in milliseconds).
REQUEST_TIMEOUT_SECONDS = 10
#: Seconds the sandbox reuses its token for a repository (an RS256 signature costs over
#: a millisecond, and DescribeImages, DeleteRepository... each ask the registry); well
#: inside the token's lifetime, so a reused token never expires on the way.
TOKEN_REUSE_SECONDS = BEARER_TTL_SECONDS / 5


class RegistryUnavailable(BackendError):
    """The sandbox's registry process could not be reached or did not answer in time."""


class _RetryNewConnectionsOnly(urllib3.Retry):
    """Retries a request whose connection failed (a kept-alive connection the registry
    closed meanwhile), never one the registry took and did not answer: each retry of a
    read timeout would cost the whole timeout again."""

    def increment(self, *args: object, **kwargs: object) -> urllib3.Retry:
        error = kwargs.get("error")
        if isinstance(error, urllib3.exceptions.ReadTimeoutError):
            raise error
        return super().increment(*args, **kwargs)  # type: ignore[arg-type]


@dataclass
class RegistryClient:
    """Tags and manifests of the registry's repositories (the sandbox's own access)."""

    base_url: str
    signer: BearerSigner
    timeout_seconds: float = REQUEST_TIMEOUT_SECONDS
    #: Repository -> (token, monotonic time it was signed).
    _tokens: dict[str, tuple[str, float]] = field(default_factory=dict, repr=False)
    _tokens_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _pool: urllib3.HTTPConnectionPool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Kept-alive connections straight to the registry: no proxy (it is on loopback,
        # and its tokens stay there), and no TCP connection set up per DescribeImages.
        # A pooled connection the registry closed meanwhile is retried on a new one; a
        # request it took but never answered is not (see _RetryNewConnectionsOnly).
        address = urlsplit(self.base_url)
        self._pool = urllib3.HTTPConnectionPool(
            address.hostname or "127.0.0.1",
            address.port,
            maxsize=8,  # the API serves requests from several threads
            timeout=self.timeout_seconds,
            retries=_RetryNewConnectionsOnly(total=2, redirect=False, raise_on_status=False),
        )

    def _token(self, repo: str) -> str:
        with self._tokens_lock:  # API requests come from many threads
            return self._token_locked(repo)

    def _token_locked(self, repo: str) -> str:
        token, signed_at = self._tokens.get(repo, ("", 0.0))
        now = time.monotonic()
        if not token or now - signed_at > TOKEN_REUSE_SECONDS:
            token = self.signer.sign(
                "labkit-sandbox", [{"type": "repository", "name": repo, "actions": ["*"]}]
            )
            # Forget the stale ones, so deleted repositories do not pile up here.
            self._tokens = {
                name: kept
                for name, kept in self._tokens.items()
                if now - kept[1] <= TOKEN_REUSE_SECONDS
            }
            self._tokens[repo] = (token, now)
        return token

    def _request(
        self,
        method: str,
        repo: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        token = self._token(repo)
        try:
            response = self._pool.request(
                method,
                f"/v2/{repo}/{path}",
                body=body,
                headers={"Authorization": f"Bearer {token}", **(headers or {})},
            )
        except urllib3.exceptions.ReadTimeoutError:
            raise RegistryUnavailable(
                f"The sandbox's registry ({self.base_url}) took the request {method} "
                f"/v2/{repo}/{path} but did not answer within {self.timeout_seconds:g} s.",
                why="its process is stuck or overloaded (it answers on loopback in milliseconds)",
                fix="retry; if it happens again, restart the sandbox "
                "(`labkit sandbox down`, then `labkit sandbox up`).",
            ) from None
        except urllib3.exceptions.HTTPError as exc:  # refused, reset: after the retries
            reason = getattr(exc, "reason", None) or exc
            raise RegistryUnavailable(
                f"The sandbox's registry ({self.base_url}) could not be reached for "
                f"{method} /v2/{repo}/{path}: {reason}",
                why="its process has stopped or is restarting",
                fix="restart the sandbox (`labkit sandbox down`, then `labkit sandbox up`).",
            ) from None
        return response.status, dict(response.headers), response.data

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
