"""CreatePrivateDnsNamespace as Cloud Map answers it: one VPC may hold several namespaces.

moto refuses any second private namespace in a VPC (``ConflictingDomainExists``, an error
of Route 53's, not Cloud Map's). Cloud Map creates a Route 53 private hosted zone per
namespace, and a VPC may have many zones, only not two of one name; so the sandbox refuses
only a second namespace of the same name in the VPC, with Cloud Map's
``NamespaceAlreadyExists`` (which carries the existing namespace's id).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from moto.core.exceptions import JsonRESTError

from labkit.sandbox.context import SandboxContext


def _already_exists(namespace: Any, vpc: str) -> JsonRESTError:
    # Cloud Map's documented meaning; this wording is the sandbox's (see docs/parity.md).
    error = JsonRESTError(
        "NamespaceAlreadyExists",
        f"The namespace {namespace.name} already exists in VPC {vpc}: use it "
        f"({namespace.id}), or choose another name.",
    )
    error.description = json.dumps(
        {
            "__type": "NamespaceAlreadyExists",
            "message": error.message,
            "NamespaceId": namespace.id,
            "CreatorRequestId": namespace.creator_request_id or "",
        }
    )
    return error


@dataclass
class NamespaceRule:
    """Shadows the servicediscovery backend's create_private_dns_namespace (this sandbox's
    backend object only)."""

    ctx: SandboxContext
    _original: Any = field(default=None, repr=False)

    def install(self) -> None:
        backend = self.ctx.backend("servicediscovery")
        self._original = backend.create_private_dns_namespace
        backend.create_private_dns_namespace = self._create_private_dns_namespace

    def remove(self) -> None:
        self.ctx.backend("servicediscovery").__dict__.pop("create_private_dns_namespace", None)

    def _create_private_dns_namespace(self, name: str, *args: Any, vpc: str, **kwargs: Any) -> str:
        backend = self.ctx.backend("servicediscovery")
        with self.ctx.lock:
            for namespace in list(backend.namespaces.values()):
                if namespace.vpc == vpc and namespace.name.rstrip(".") == name.rstrip("."):
                    raise _already_exists(namespace, vpc)
            # moto checks the VPC only: create under a VPC id no namespace has, then set it.
            placeholder = f"{vpc}/labkit-{uuid.uuid4().hex}"
            operation_id = self._original(name, *args, vpc=placeholder, **kwargs)
            for namespace in list(backend.namespaces.values()):
                if namespace.vpc == placeholder:
                    namespace.vpc = vpc
            return operation_id
