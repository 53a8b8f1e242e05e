"""The registry's credentials: ECR authorization tokens, and the bearer tokens the registry trusts.

Both keys live in the sandbox home, owner-only, so tokens stay valid across a restart.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from labkit.files import write_private
from labkit.sandbox.registry_runner import REGISTRY_SERVICE, TOKEN_ISSUER

#: Lifetime of the short bearer tokens the registry checks (Docker asks again as needed).
BEARER_TTL_SECONDS = 300


class BearerSigner:
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

    The password is a JWT (HS256) carrying its principal and expiry, so tokens stay valid
    across a sandbox restart (the key is kept in the sandbox home) and need no table.
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
        password = jwt.encode({"p": principal_arn, "exp": expires}, self._key, algorithm="HS256")
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
        try:
            claims = jwt.decode(password, self._key, algorithms=["HS256"])
        except jwt.ExpiredSignatureError:
            raise PermissionError(
                "your authorization token has expired; reauthenticate and try again"
            ) from None
        except jwt.InvalidTokenError:
            raise PermissionError("the password is not a valid authorization token") from None
        return claims["p"]
