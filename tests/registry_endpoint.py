"""An AWS-compatible endpoint that also serves the registry API on its own port.

Some emulators answer ECR's API with repository URIs on AWS's own registry host
(``ACCOUNT.dkr.ecr.REGION.amazonaws.com``, which does not resolve here) while serving
the distribution API (``/v2/``) on the endpoint's port. This builds one from real
parts: a bare ``moto_server`` (ECR names AWS's host, as such emulators do), the CNCF
registry binary, and one port in front of both: ``/v2/…`` goes to the registry, the rest
to moto. A manifest pushed with a tag is also put into moto's ECR (PutImage, with the
registry's digest), as an integrated emulator lists what was pushed; a push to a
repository ECR does not have is refused with the registry's ``NAME_UNKNOWN``.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from benchmarks.polling import wait_for
from tests.conftest import free_port
from tests.moto_server import moto_server_process

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<reference>[^/]+)$")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "trailer"}


class _FrontDoor:
    """The endpoint's one port: routes by path, and keeps ECR's image list in step."""

    def __init__(self, moto_url: str, registry_addr: str, region: str) -> None:
        self.moto = urllib.parse.urlsplit(moto_url).netloc
        self.registry = registry_addr
        self.ecr = boto3.client(
            "ecr",
            endpoint_url=moto_url,
            region_name=region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(proxies={}),
        )

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        return self.answer(request)(environ, start_response)

    def answer(self, request: Request) -> Response:
        to_registry = request.path == "/v2" or request.path.startswith("/v2/")
        manifest = _MANIFEST.match(request.path) if to_registry else None
        if manifest and request.method == "PUT" and not self._repository(manifest["name"]):
            body = {
                "errors": [
                    {
                        "code": "NAME_UNKNOWN",
                        "message": "repository name not known to registry",
                        "detail": {"name": manifest["name"]},
                    }
                ]
            }
            return Response(json.dumps(body), 404, content_type="application/json")
        body = request.get_data()
        status, headers, payload = self._forward(
            self.registry if to_registry else self.moto, request, body
        )
        reference = manifest["reference"] if manifest else ""
        if manifest and request.method == "PUT" and status == 201:
            if not reference.startswith("sha256:"):
                self.ecr.put_image(
                    repositoryName=manifest["name"],
                    imageManifest=body.decode(),
                    imageManifestMediaType=request.headers.get("Content-Type", ""),
                    imageTag=reference,
                    imageDigest=dict(headers).get("Docker-Content-Digest", ""),
                )
        response = Response(payload, status)
        response.headers.clear()
        for key, value in headers:
            if key.lower() not in _HOP_BY_HOP:
                response.headers.add(key, value)
        return response

    def _repository(self, name: str) -> bool:
        try:
            self.ecr.describe_repositories(repositoryNames=[name])
        except self.ecr.exceptions.RepositoryNotFoundException:
            return False
        return True

    def _forward(
        self, netloc: str, request: Request, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        host, port = netloc.rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=120)
        path = request.full_path if request.query_string else request.path
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        try:
            connection.request(request.method, path, body=body, headers=headers)
            reply = connection.getresponse()
            return reply.status, reply.getheaders(), reply.read()
        finally:
            connection.close()


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass  # one line per blob chunk would drown the test's output

    def log_error(self, *args: Any) -> None:
        pass  # e.g. Docker first trying HTTPS on the plain-HTTP port


@contextmanager
def registry_endpoint(home: Path, region: str) -> Iterator[str]:
    """Start moto, the registry and the front door; yield the endpoint's URL; stop them."""
    binary = shutil.which("docker-registry") or shutil.which("registry")
    if binary is None:
        raise RuntimeError("the CNCF registry binary (docker-registry) is not installed")
    registry_addr = f"127.0.0.1:{free_port()}"
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(home / "registry")}},
        "http": {"addr": registry_addr},
    }
    config_path = home / "registry.json"
    config_path.write_text(json.dumps(config))
    with (
        moto_server_process() as moto_url,
        open(home / "registry.log", "wb") as log,
        subprocess.Popen(
            [binary, "serve", str(config_path)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        ) as registry,
    ):
        try:

            def answers() -> bool:
                if registry.poll() is not None:
                    raise RuntimeError(f"docker-registry exited: see {home / 'registry.log'}")
                _NO_PROXY.open(f"http://{registry_addr}/v2/", timeout=2).close()
                return True

            wait_for(answers, 20, 0.1, what="docker-registry", ignoring=(OSError,))
            server = make_server(
                "127.0.0.1",
                free_port(),
                _FrontDoor(moto_url, registry_addr, region),
                threaded=True,
                request_handler=_Quiet,
            )
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            try:
                yield f"http://127.0.0.1:{server.server_port}"
            finally:
                server.shutdown()
                thread.join(10)
        finally:
            registry.terminate()
            registry.wait(10)
