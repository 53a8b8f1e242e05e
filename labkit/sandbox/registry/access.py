"""The registry's token realm, playing ECR: who may pull, push and delete what.

Docker asks the realm (``/_labkit/registry/token``) for a bearer token with the password
from ``GetAuthorizationToken``; anonymous, wrong and expired passwords are refused. A
repository's actions are granted the way ECR grants them: the account's own user may do
everything; any other principal (the container instance role) only what the repository
policy allows it, Deny winning (:mod:`~labkit.sandbox.registry.policy` evaluates it as
IAM does). An explicit Deny applies to the account's user too, as on AWS.
"""

from __future__ import annotations

import datetime as dt
import hmac

from moto.sts.models import sts_backends
from moto.utilities.utils import get_partition
from werkzeug.wrappers import Request, Response

from labkit.sandbox.api import json_response
from labkit.sandbox.context import SandboxContext
from labkit.sandbox.credentials import read_credentials
from labkit.sandbox.registry.policy import Caller, Decision, decide
from labkit.sandbox.registry.tokens import BEARER_TTL_SECONDS, BearerSigner, EcrTokens

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


class RegistryAccess:
    """Answers the registry's token requests and says why a pull is refused."""

    def __init__(self, ctx: SandboxContext, signer: BearerSigner, tokens: EcrTokens) -> None:
        self.ctx = ctx
        self.signer = signer
        self.tokens = tokens
        self.user_arn = f"arn:aws:iam::{ctx.account_id}:user/moto"

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

    def token_ttl_route(self, request: Request) -> Response:
        """Change the lifetime of tokens issued from now on (lets tests see one expire).

        Only for whoever holds this sandbox's secret key (header ``X-Labkit-Secret``):
        on a shared host another user must not shorten this learner's tokens."""
        if request.method == "POST":
            own = read_credentials(self.ctx.settings.home)
            given = request.headers.get("X-Labkit-Secret", "")
            if own is None or not hmac.compare_digest(given, own.secret_access_key):
                return json_response({"message": "X-Labkit-Secret does not match"}, status=403)
            self.tokens.ttl_seconds = int(request.get_json(force=True)["seconds"])
        return json_response({"seconds": self.tokens.ttl_seconds})

    def may(self, principal_arn: str, repository: str, registry_action: str) -> bool:
        return not self.denied_actions(principal_arn, repository, registry_action)

    def denied_actions(
        self, principal_arn: str, repository: str, registry_action: str
    ) -> list[str]:
        """The ECR actions ``registry_action`` needs that the principal may not do.

        An unknown registry action, or a repository that does not exist, is refused.
        """
        return [a for a, _ in self._refusals(principal_arn, repository, registry_action)]

    def _refusals(
        self, principal_arn: str, repository: str, registry_action: str
    ) -> list[tuple[str, Decision]]:
        needed = REGISTRY_ACTION_NEEDS.get(registry_action)
        with self.ctx.lock:
            repo = self.ctx.backend("ecr").repositories.get(repository)
            if repo is None or needed is None:
                return [(a, Decision.IMPLICIT_DENY) for a in (needed or ("ecr:*",))]
            policy = repo.policy
        if principal_arn == self.user_arn:
            # The account's administrator (the learner): allowed all, unless a Deny matches.
            caller = Caller.user(principal_arn, self.ctx.account_id)
            decisions = [(a, decide(policy, caller, a)) for a in needed]
            return [(a, d) for a, d in decisions if d is Decision.EXPLICIT_DENY]
        caller = Caller.role(principal_arn, self.ctx.account_id)
        decisions = [(a, decide(policy, caller, a)) for a in needed]
        return [(a, d) for a, d in decisions if d is not Decision.ALLOW]

    def pull_denial_reason(self, principal_arn: str, repository: str) -> str | None:
        """ECR's AccessDenied sentence for a refused pull, or None when it is allowed."""
        refused = self._refusals(principal_arn, repository, "pull")
        if not refused:
            return None
        role = principal_arn.rsplit("/", 1)[-1]
        assumed = f"arn:aws:sts::{self.ctx.account_id}:assumed-role/{role}/container-instance"
        resource = f"arn:aws:ecr:{self.ctx.region}:{self.ctx.account_id}:repository/{repository}"
        with self.ctx.lock:
            exists = repository in self.ctx.backend("ecr").repositories
        if not exists:
            return f"The repository with name '{repository}' does not exist in the registry."
        action, decision = refused[0]
        if decision is Decision.EXPLICIT_DENY:
            why = "with an explicit deny in a resource-based policy"
        else:
            why = f"because no resource-based policy allows the {action} action"
        return (
            f"User: {assumed} is not authorized to perform: {action} on resource: {resource} {why}"
        )

    def caller_arn(self, access_key_id: str | None) -> str:
        """Whom ``GetAuthorizationToken`` was called as: a role assumed through STS, as
        the instance role is on a container instance, or else the account's user."""
        if access_key_id:
            sts = sts_backends[self.ctx.account_id][get_partition(self.ctx.region)]
            assumed = sts.get_assumed_role_from_access_key(access_key_id)
            if assumed is not None:
                return assumed.role_arn
        return self.user_arn


def _registry_error(status: int, message: str) -> Response:
    body = {"errors": [{"code": "UNAUTHORIZED", "message": message, "detail": None}]}
    response = json_response(body, status=status)
    response.headers["WWW-Authenticate"] = 'Basic realm="labkit-sandbox"'
    return response
