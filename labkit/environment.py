"""The lab environment in each backend: notebook 00's AWS-mode cells and ``labkit status``.

The lab assumes a pre-provisioned environment (``ECSCluster``, the two roles,
``Myloadbalancer``, ``myTargetgroup``). The sandbox builds it in; in your own AWS account
:mod:`labkit.backends.aws` finds it or, after an explicit cost confirmation, creates it
from the kit's CloudFormation template (:mod:`labkit.teardown` removes it at the end).

With an AWS-compatible endpoint (``AWS_ENDPOINT_URL``, backend ``endpoint``)
:mod:`labkit.backends.endpoint` finds it or creates it with plain API calls (free, no
confirmation) and says which tasks that endpoint can serve.

Each function here takes the :class:`~labkit.lab.Lab`, does its AWS-mode work through
the Lab's own boto3 session (same credentials, same region), its endpoint work through
the Lab's clients, and in the sandbox prints one line saying it is not needed and
returns None.
"""

from __future__ import annotations

from typing import Any

from labkit.backends import endpoint
from labkit.backends.aws import pricing, provisioning
from labkit.config import Backend
from labkit.errors import InputError
from labkit.lab import Lab


def _not_needed(lab: Lab, what: str) -> bool:
    """True (after printing one line) when ``lab`` is in the sandbox."""
    if lab.backend is not Backend.SANDBOX:
        return False
    print(f"☑️  {what}: not needed in the sandbox (its lab environment is already there).")
    return True


def _free_on_endpoint(lab: Lab, what: str) -> bool:
    """True (after printing one line) when ``lab`` talks to an AWS-compatible endpoint."""
    if lab.backend is not Backend.ENDPOINT:
        return False
    print(
        f"☑️  {what}: nothing to pay at {lab.target.endpoint_url}: an AWS-compatible "
        "endpoint is not AWS, so the kit sets up the lab environment there without asking."
    )
    return True


def show_capabilities(capabilities: endpoint.EndpointCapabilities) -> None:
    """Which tasks an endpoint can serve, as a table (HTML, with a plain-text twin)."""
    from labkit.display import table

    table(
        f"What {capabilities.endpoint_url} can serve of this lab",
        ["", "lab task", "here", "because"],
        capabilities.rows(),
    )
    if capabilities.unserved:
        print(
            "❌ tasks stop at their first cell with the reason above; the offline sandbox "
            '(backend = "sandbox") serves them all.'
        )


def session(lab: Lab) -> Any:
    """The Lab's boto3 session (its region set), for :mod:`labkit.backends.aws`."""
    return lab.target.session


def coerce_confirm_cost(value: Any) -> bool:
    """``confirm_cost`` from the parameters cell: a boolean, never a guess.

    ``labkit run -p confirm_cost true`` hands the notebook the text ``"true"``, so the
    exact words true/false (any case) count too; anything else ("yes", 1, "") is refused.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InputError(
        f"confirm_cost must be True or False, not {value!r}.",
        why="Creating the lab environment costs money, so only an explicit boolean counts.",
        fix="Set confirm_cost = True in the parameters cell (papermill: -p confirm_cost True).",
    )


def show_cost_estimate(lab: Lab) -> pricing.CostEstimate | None:
    """AWS mode: what the lab environment roughly costs per hour and day."""
    if _not_needed(lab, "Cost estimate") or _free_on_endpoint(lab, "Cost estimate"):
        return None
    estimate = pricing.estimate_cost(lab.region)
    print(estimate.describe())
    return estimate


def ensure_environment(
    lab: Lab, confirm_cost: Any = False
) -> provisioning.LabEnvironment | endpoint.EndpointEnvironment | None:
    """AWS mode: find the lab environment; provision it only if missing and confirmed.

    Endpoint: find it or create what is missing (free), then show which tasks work there."""
    if _not_needed(lab, "Lab environment"):
        return None
    if lab.backend is Backend.ENDPOINT:
        print(f"Looking for the lab environment at {lab.target.endpoint_url}…")
        found = endpoint.ensure_environment(lab)
        print(found.describe())
        show_capabilities(endpoint.capabilities(lab))  # probed just now
        return found
    confirm = coerce_confirm_cost(confirm_cost)
    env = provisioning.find_environment(session(lab))
    if env is not None and env.complete:
        print("♻️  Found a complete lab environment; using it as it is.")
    else:
        if confirm:
            print("Provisioning the lab environment with CloudFormation (about 5 minutes)…")
        env = provisioning.provision(session(lab), confirm_cost=confirm)
    print(env.describe())
    return env


def show_age_and_cost(lab: Lab) -> pricing.EnvironmentAge | None:
    """AWS mode: how long the kit's stack has existed and roughly what it cost so far."""
    if _not_needed(lab, "Age and cost so far"):
        return None
    if lab.backend is Backend.ENDPOINT:
        print(f"☑️  Age and cost so far: nothing is billed at {lab.target.endpoint_url}.")
        return None
    age = provisioning.environment_age_and_cost(session(lab))
    if age is None:
        print("The kit did not create this lab environment, so it adds nothing to your bill.")
        return None
    print(age.describe())
    return age


def status_text(lab: Lab) -> str:
    """``labkit status``: backend, identity, region, and the environment or the sandbox."""
    lines = [f"Backend: {lab.backend.value}"]
    if lab.backend is Backend.SANDBOX:
        from labkit.aws import sandbox_status

        status = sandbox_status()
        if status is None or not status.running:
            lines.append(status.describe() if status else "The sandbox is not installed.")
            return "\n".join(lines)
    identity = lab.identity
    lines += [f"Identity: {identity['arn']} (account {identity['account']})"]
    lines += [f"Region:   {lab.region}"]
    if lab.backend is Backend.SANDBOX:
        lines.append(status.describe())
    elif lab.backend is Backend.AWS:
        env = provisioning.find_environment(session(lab))
        lines.append(
            env.describe()
            if env
            else "No lab environment in this region yet "
            "(notebook 00 provisions one after you confirm the cost)."
        )
        age = provisioning.environment_age_and_cost(session(lab))
        lines.append(
            age.describe()
            if age
            else "No stack created by the kit: nothing it "
            "made is running up a bill for the environment."
        )
    else:
        lines.append(f"Endpoint: {lab.target.endpoint_url}")
        lines.append(endpoint.find_environment(lab).describe())
        lines.append(endpoint.capabilities(lab).describe())
    return "\n".join(lines)
