"""The sandbox's credentials, and a SigV4 check in front of moto: as an AWS account is.

moto accepts any key. On a shared host (a classroom) that would let one learner's boto3
call another learner's sandbox, so each sandbox home gets its own generated access key
and secret, and the API answers only requests signed with them (or with temporary
credentials its own STS issued, e.g. the instance role's). Others are refused with the
error codes AWS uses: ``UnrecognizedClientException`` / ``InvalidClientTokenId`` /
``AuthFailure`` for an unknown key, ``InvalidSignatureException`` /
``SignatureDoesNotMatch`` for a wrong secret or a tampered request.

The signature is recomputed with botocore's own SigV4 signer over exactly the headers
the client signed, so it agrees with every AWS SDK and the aws CLI.
"""

from __future__ import annotations

import datetime as dt
import hmac
import io
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials
from werkzeug.datastructures import EnvironHeaders

from labkit.sandbox.credentials import SandboxCredentials

#: AWS refuses a signature whose date is further than this from its clock.
MAX_CLOCK_SKEW = dt.timedelta(minutes=15)


# -- the check ---------------------------------------------------------------------------

#: Looks up the secret of an access key (None: unknown key).
SecretLookup = Callable[[str], str | None]

_UNKNOWN_KEY = "The security token included in the request is invalid."
_BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service "
    "documentation for details."
)


@dataclass(frozen=True)
class _Refusal:
    unknown_key: bool
    message: str


def _parse_authorization(header: str) -> dict[str, str] | None:
    if not header.startswith("AWS4-HMAC-SHA256 "):
        return None
    fields: dict[str, str] = {}
    for part in header[len("AWS4-HMAC-SHA256 ") :].split(","):
        name, _, value = part.strip().partition("=")
        fields[name] = value
    if not {"Credential", "SignedHeaders", "Signature"} <= fields.keys():
        return None
    return fields


def _request_headers(environ: dict[str, Any]) -> dict[str, str]:
    return {name.lower(): value for name, value in EnvironHeaders(environ).items()}


def check_signature(
    environ: dict[str, Any], body: bytes, secret_of: SecretLookup
) -> _Refusal | None:
    """None when the request is signed by a known key with the right secret."""
    fields = _parse_authorization(environ.get("HTTP_AUTHORIZATION", ""))
    if fields is None:
        return _Refusal(True, "Missing Authentication Token")
    scope = fields["Credential"].split("/")
    if len(scope) != 5:
        return _Refusal(True, _UNKNOWN_KEY)
    access_key, day, region, service, _ = scope
    secret = secret_of(access_key)
    if secret is None:
        return _Refusal(True, _UNKNOWN_KEY)
    headers = _request_headers(environ)
    timestamp = headers.get("x-amz-date", "")
    try:
        when = dt.datetime.strptime(timestamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return _Refusal(False, _BAD_SIGNATURE)
    if abs(dt.datetime.now(dt.UTC) - when) > MAX_CLOCK_SKEW or not timestamp.startswith(day):
        return _Refusal(False, "Signature expired: " + timestamp)
    signed = [name for name in fields["SignedHeaders"].split(";") if name]
    raw_path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ["PATH_INFO"]
    path = raw_path.split("?", 1)[0]
    query = environ.get("QUERY_STRING", "")
    url = f"http://{headers.get('host', '')}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(
        method=environ["REQUEST_METHOD"],
        url=url,
        headers={name: headers.get(name, "") for name in signed},
        data=body,
    )
    request.context["timestamp"] = timestamp
    signer = _ExactHeadersSigner(Credentials(access_key, secret), service, region, signed)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, fields["Signature"]):
        return _Refusal(False, _BAD_SIGNATURE)
    return None


class _ExactHeadersSigner(SigV4Auth):
    """SigV4 over the headers the client listed, not the ones botocore would pick."""

    def __init__(self, credentials: Any, service: str, region: str, signed: list[str]) -> None:
        super().__init__(credentials, service, region)
        self._signed = signed

    def headers_to_sign(self, request: Any) -> Any:
        chosen = HTTPHeaders()
        for name in self._signed:
            chosen[name] = request.headers.get(name, "")
        return chosen


def _service_of(environ: dict[str, Any]) -> str:
    fields = _parse_authorization(environ.get("HTTP_AUTHORIZATION", "")) or {}
    scope = fields.get("Credential", "").split("/")
    return scope[3] if len(scope) == 5 else ""


def refusal_response(environ: dict[str, Any], refusal: _Refusal) -> tuple[str, list, bytes]:
    """(status, headers, body) in the error shape the called service's protocol uses."""
    request_id = str(uuid.uuid4())
    missing = refusal.message == "Missing Authentication Token"
    if environ.get("CONTENT_TYPE", "").startswith("application/x-amz-json"):  # ECR, ECS, Cloud Map
        code = "UnrecognizedClientException" if refusal.unknown_key else "InvalidSignatureException"
        code = "MissingAuthenticationTokenException" if missing else code
        body = json.dumps({"__type": code, "message": refusal.message}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-RequestId", request_id)]
        status = "403 Forbidden" if missing else "400 Bad Request"
        return status, [*headers, ("x-amzn-ErrorType", f"{code}:")], body
    if _service_of(environ) == "ec2":
        code = "AuthFailure" if refusal.unknown_key else "SignatureDoesNotMatch"
        xml = (
            f"<Response><Errors><Error><Code>{code}</Code><Message>{refusal.message}"
            f"</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
        )
        return "401 Unauthorized", [("Content-Type", "text/xml")], xml.encode()
    code = "InvalidClientTokenId" if refusal.unknown_key else "SignatureDoesNotMatch"
    code = "MissingAuthenticationToken" if missing else code
    xml = (
        f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
        f"<Message>{refusal.message}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return "403 Forbidden", [("Content-Type", "text/xml")], xml.encode()


class SignatureRequired:
    """WSGI middleware: only correctly signed requests reach ``app``."""

    def __init__(self, app: Any, secret_of: SecretLookup) -> None:
        self.app = app
        self.secret_of = secret_of

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        # moto reads the body again after us.
        environ["wsgi.input"] = io.BytesIO(body)
        refusal = check_signature(environ, body, self.secret_of)
        if refusal is None:
            return self.app(environ, start_response)
        status, headers, payload = refusal_response(environ, refusal)
        start_response(status, [*headers, ("Content-Length", str(len(payload)))])
        return [payload]


def sandbox_secret_lookup(credentials: SandboxCredentials, account_id: str, region: str):
    """The sandbox's own key, plus temporary keys its STS issued (AssumeRole)."""

    def secret_of(access_key: str) -> str | None:
        if hmac.compare_digest(access_key, credentials.access_key_id):
            return credentials.secret_access_key
        from moto.sts.models import sts_backends
        from moto.utilities.utils import get_partition

        assumed = sts_backends[account_id][get_partition(region)].get_assumed_role_from_access_key(
            access_key
        )
        return getattr(assumed, "secret_access_key", None) if assumed is not None else None

    return secret_of
