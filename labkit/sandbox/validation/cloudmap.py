"""CreatePrivateDnsNamespace as Cloud Map answers it: one VPC may hold several namespaces.

moto refuses any second private namespace in a VPC (``ConflictingDomainExists``). Cloud
Map creates a Route 53 private hosted zone per namespace, and Route 53 refuses only a
second zone of the same name in the same VPC; so the sandbox refuses only that.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from moto.core.exceptions import JsonRESTError

from labkit.sandbox.context import SandboxContext


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
                    # moto's message is the VPC id alone; this one says what conflicts.
                    raise JsonRESTError(
                        "ConflictingDomainExists",
                        f"A namespace named {name} already exists in VPC {vpc} "
                        f"({namespace.id}). Use it, or choose another name.",
                    )
            # moto checks the VPC only: create under a name no namespace has, then set it.
            placeholder = f"{vpc}/labkit-{uuid.uuid4().hex}"
            operation_id = self._original(name, *args, vpc=placeholder, **kwargs)
            for namespace in list(backend.namespaces.values()):
                if namespace.vpc == placeholder:
                    namespace.vpc = vpc
            return operation_id
