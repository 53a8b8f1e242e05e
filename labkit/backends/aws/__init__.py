"""Your own AWS account: what the lab environment costs (:mod:`.pricing`), finding or
provisioning it with CloudFormation (:mod:`.provisioning`), and AWS's "access denied"
explained against the kit's learner policy (:mod:`.access`)."""

from labkit.backends.aws.access import (
    POLICY_PATH,
    access_denied_explained,
    explain_access_denied,
)
from labkit.backends.aws.pricing import PRICES_AS_OF, estimate_cost
from labkit.backends.aws.provisioning import (
    STACK_NAME,
    LabEnvironment,
    environment_age_and_cost,
    find_environment,
    load_template,
    provision,
)

__all__ = [
    "POLICY_PATH",
    "PRICES_AS_OF",
    "STACK_NAME",
    "LabEnvironment",
    "access_denied_explained",
    "environment_age_and_cost",
    "estimate_cost",
    "explain_access_denied",
    "find_environment",
    "load_template",
    "provision",
]
