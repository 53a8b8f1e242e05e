"""The sandbox's image registry: a real CNCF distribution registry, with ECR's rules.

- The registry (Debian's ``docker-registry`` as a host process, or the ``registry:2``
  image as a container: see :mod:`labkit.sandbox.registry_runner`) stores the layers and
  manifests and speaks the OCI distribution API on ``127.0.0.1:<registry_port>``; Docker
  trusts a loopback registry over plain HTTP, so stock ``docker tag``/``push`` reach it.
- :mod:`~labkit.sandbox.registry.access`: the registry's token realm plays ECR, granting
  a repository's actions by its policy, which :mod:`~labkit.sandbox.registry.policy`
  checks when it is set and evaluates as IAM does; :mod:`~labkit.sandbox.registry.tokens`
  signs the ECR passwords and the registry's bearer tokens.
- :mod:`~labkit.sandbox.registry.ecr_hooks`: ECR's API is moto's, kept in step with the
  registry through :mod:`~labkit.sandbox.registry.client` (the registry's HTTP API).
- :mod:`~labkit.sandbox.registry.persistence`: repositories and their policies are saved
  to ``ecr.json`` so a restarted sandbox lists the images it already holds.
"""

from __future__ import annotations

from labkit.sandbox.context import SandboxContext
from labkit.sandbox.registry.access import RegistryAccess
from labkit.sandbox.registry.client import RegistryClient
from labkit.sandbox.registry.ecr_hooks import EcrHooks
from labkit.sandbox.registry.persistence import RepositoryStore
from labkit.sandbox.registry.tokens import BearerSigner, EcrTokens
from labkit.sandbox.registry_runner import RegistryRunner, make_runner

__all__ = ["Registry"]


class Registry:
    """Starts the registry process and keeps moto's ECR in step with it."""

    def __init__(self, ctx: SandboxContext, api_url: str) -> None:
        self.ctx = ctx
        self.host = ctx.settings.registry_host
        self.api_url = api_url
        self.signer = BearerSigner(ctx.settings.home)
        tokens = EcrTokens(ctx.settings.home, ctx.settings.token_ttl_seconds)
        self.access = RegistryAccess(ctx, self.signer, tokens)
        self.store = RepositoryStore(ctx.settings.home / "ecr.json")
        client = RegistryClient(f"http://{self.host}", self.signer)
        self.ecr_hooks = EcrHooks(ctx, client, self.store, self.access, self.host)
        self.runner: RegistryRunner | None = None
        # The sandbox's API routes, and what the agent asks before and for each pull.
        self.token_route = self.access.token_route
        self.token_ttl_route = self.access.token_ttl_route
        ctx.registry_credentials = tokens.credentials
        ctx.pull_denial_reason = self.access.pull_denial_reason

    def install_ecr_patches(self) -> None:
        """Route moto's ECR through this registry (only while this sandbox is active)."""
        self.ecr_hooks.install()

    def start(self) -> None:
        """Run the registry: the host binary, or a ``registry:2`` container (see
        :mod:`labkit.sandbox.registry_runner` for which, and why)."""
        self.runner = make_runner(self.ctx.settings, self.ctx.docker, self.signer.cert_path)
        self.runner.start()

    def stop(self) -> None:
        if self.runner is not None:
            self.runner.stop()
        self.ecr_hooks.remove()

    @property
    def running(self) -> bool:
        return self.runner is not None and self.runner.running

    def restore_repositories(self) -> list[str]:
        """Re-create the repositories saved by an earlier sandbox; returns their names."""
        ecr = self.ctx.backend("ecr")
        restored = self.store.restore(ecr)
        for name in restored:
            self.ecr_hooks.sync(name)
        self.store.save(ecr)  # create_repository saved before the policy was put back
        return restored
