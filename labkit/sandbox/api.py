"""The sandbox's AWS endpoint: moto's server, in-process, plus ``/_labkit/*`` routes.

One loopback port answers every AWS service the lab uses (moto dispatches on the
request's signature) and the sandbox's own routes: health, status and the registry's
token realm.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

ADMIN_PREFIX = "/_labkit/"

#: A sandbox route: takes the request, returns the response.
Route = Callable[[Request], Response]


#: Hosts whose backend :class:`_Dispatcher` remembers; a request names one per service and
#: region, so this bounds the memory a client making up hosts could take.
_REMEMBERED_HOSTS = 256


class _Dispatcher(DomainDispatcherApplication):
    """moto's dispatcher, remembering which backend answers a host.

    moto looks the host up afresh at every request: it lists its own package directory
    (about 175 ``stat`` calls, each giving up the GIL) before trying its URL patterns. The
    answer depends on the host alone, so the sandbox looks each one up once. With the
    agent's and load balancer's threads running, each of those GIL hand-offs may wait for
    another thread: measured, the lookup took about half of the time the sandbox's calls
    spent inside moto (2 ms or more a call).
    """

    def __init__(self, create_app: Callable[[str], Any]) -> None:
        super().__init__(create_app)
        self._backend_of_host: dict[str, Any] = {}

    def get_backend_for_host(self, host: str | None) -> Any:
        # Called with moto's dispatcher lock held, so the dict needs no lock of its own.
        if host is None:
            return None
        backend = self._backend_of_host.get(host)
        if backend is None:
            backend = super().get_backend_for_host(host)
            if backend is not None and len(self._backend_of_host) < _REMEMBERED_HOSTS:
                self._backend_of_host[host] = backend
        return backend


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload, default=str), status=status, mimetype="application/json")


@dataclass
class _AdminMiddleware:
    moto_app: Any
    routes: dict[str, Route]

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.startswith(ADMIN_PREFIX):
            route = self.routes.get(path[len(ADMIN_PREFIX) :])
            if route is None:
                response = json_response({"error": f"no sandbox route {path}"}, status=404)
            else:
                response = route(Request(environ))
            return response(environ, start_response)
        return self.moto_app(environ, start_response)


class ApiServer:
    """moto plus the sandbox routes on ``host:port``, served from a thread."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.routes: dict[str, Route] = {}
        #: When set, AWS calls must be SigV4-signed by a key it knows (see sandbox.auth).
        self.secret_of: Callable[[str], str | None] | None = None
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def add_route(self, name: str, route: Route) -> None:
        self.routes[name] = route

    def start(self) -> None:
        moto_app: Any = _Dispatcher(create_backend_app)
        if self.secret_of is not None:
            from labkit.sandbox.auth import SignatureRequired

            moto_app = SignatureRequired(moto_app, self.secret_of)
        app = _AdminMiddleware(moto_app, self.routes)
        self._server = make_server(
            self.host, self.port, app, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="labkit-api", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
