"""Task 1 of the lab guide: create the repository ``myrepo`` and its permission statement.

- ``q1``: CreateRepository (steps 5–8), then copy the repository URI;
- ``q2``: the statement ``my_repository_statement`` allowing ``Ec2instanceRole`` the
  repository's actions, set with SetRepositoryPolicy (steps 10–16).
"""

from __future__ import annotations

import json
from typing import Any

from labkit import ecr
from labkit.lab import Lab
from labkit.names import LAB
from labkit.tasks.exercise import Exercise, Solution, Task, Verdict, ____
from labkit.tasks.understanding import Question, Quiz

__all__ = ["TASK", "q1", "q2", "quiz", "____"]


def _repository_created(lab: Lab) -> Verdict:
    repository = ecr.find_repository(lab)
    if repository is not None:
        return Verdict.ok(f"repository {lab.repository_name} exists: {repository['repositoryUri']}")
    others = [r["repositoryName"] for r in lab.ecr.describe_repositories()["repositories"]]
    if others:
        return Verdict.wrong(
            f"no repository named {lab.repository_name!r}; found {', '.join(sorted(others))}",
            f"The lab's repository is named {lab.repository_name!r} (step 6); create one with "
            "exactly that name (the others can stay).",
        )
    return Verdict.wrong(
        f"repository {lab.repository_name!r} does not exist yet",
        "Call create_repository with repositoryName set to the lab's name, then run the "
        "check again.",
    )


def _statement_set(lab: Lab) -> Verdict:
    if ecr.find_repository(lab) is None:
        return Verdict.wrong(
            f"repository {lab.repository_name!r} does not exist yet", "Do Exercise 1.1 first."
        )
    policy = ecr.repository_policy(lab)
    if policy is None:
        return Verdict.wrong(
            f"repository {lab.repository_name} has no permission statement yet",
            "Build the statement, wrap it in a policy document "
            '{"Version": "2012-10-17", "Statement": [statement]} and call '
            "set_repository_policy with it as JSON text (json.dumps).",
        )
    sid = lab.names.repository_statement
    statements = ecr.as_list(policy.get("Statement"))
    mine = [s for s in statements if isinstance(s, dict) and s.get("Sid") == sid]
    if not mine:
        found = ", ".join(repr(s.get("Sid")) for s in statements if isinstance(s, dict))
        return Verdict.wrong(
            f"the repository policy has no statement named {sid!r} (found: {found or 'none'})",
            f'Name the statement {sid!r} (step 13): that is its "Sid".',
        )
    statement = mine[0]
    principal = statement.get("Principal", {})
    principals = ecr.as_list(principal.get("AWS") if isinstance(principal, dict) else principal)
    if lab.instance_role_arn not in principals:
        named = [p for p in principals if isinstance(p, str) and not p.startswith("arn:")]
        if any(p.rsplit("/", 1)[-1] == lab.names.instance_role for p in named):
            return Verdict.wrong(
                f"{sid} names the role by its name, {named[0]!r}, not by its ARN",
                f"A Principal takes the role's ARN (step 14): "
                f"iam.get_role(RoleName={lab.names.instance_role!r})['Role']['Arn'].",
            )
        return Verdict.wrong(
            f"{sid} allows {principals or 'nobody'}, not the role {lab.names.instance_role}",
            f"The principal is the container instances' role (step 14): look up its ARN with "
            f"iam.get_role(RoleName={lab.names.instance_role!r}) and use "
            '{"AWS": <that ARN>}.',
        )
    if statement.get("Effect") != "Allow":
        return Verdict.wrong(
            f"{sid} has Effect {statement.get('Effect')!r}",
            'The statement must "Allow" (the console\'s default; the guide has no step for it).',
        )
    actions = set(ecr.as_list(statement.get("Action")))
    missing = sorted(set(ecr.REPOSITORY_ACTIONS) - actions)
    if missing and "ecr:*" not in actions:
        return Verdict.wrong(
            f"{sid} lacks {len(missing)} of the {len(ecr.REPOSITORY_ACTIONS)} actions the "
            f"lab selects (for example {missing[0]})",
            "Step 15 selects all actions: list every name in labkit.ecr.REPOSITORY_ACTIONS "
            '(or "ecr:*").',
        )
    return Verdict.ok(f"{sid} allows {lab.names.instance_role} all repository actions")


def _repository_made(lab: Lab) -> str | None:
    """When the repository was created: a new one (deleted and made again) differs."""
    repository = ecr.find_repository(lab)
    return str(repository["createdAt"]) if repository else None


def _policy_text(lab: Lab) -> str | None:
    policy = ecr.repository_policy(lab)
    return json.dumps(policy, sort_keys=True) if policy is not None else None


def _learner_policies(exc: BaseException) -> list[dict[str, Any]]:
    """The policy documents (dicts with a "Statement") the learner's cell held when AWS
    refused: the frames of the traceback are the cell's and the calls below it."""
    found = []
    tb = exc.__traceback__
    while tb is not None:
        for value in tb.tb_frame.f_locals.values():
            if isinstance(value, dict) and "Statement" in value:
                found.append(value)
        tb = tb.tb_next
    return found


def _cell_holds_live_policy(lab: Lab, names: dict[str, Any]) -> bool:
    """Does the learner's cell hold, as a dict, the very policy the repository has? Setting
    the identical policy again leaves its text (the fingerprint) unchanged."""
    live = ecr.repository_policy(lab)
    return live is not None and any(
        isinstance(value, dict) and "Statement" in value and value == live
        for value in names.values()
    )


def _explain_policy_refusal(exc: BaseException) -> str | None:
    """A role's name where the Principal needs its ARN, said as such."""
    role = LAB.instance_role
    for policy in _learner_policies(exc):
        for statement in ecr.as_list(policy.get("Statement")):
            principal = statement.get("Principal") if isinstance(statement, dict) else None
            values = ecr.as_list(principal.get("AWS") if isinstance(principal, dict) else principal)
            for value in values:
                if isinstance(value, str) and not value.startswith("arn:") and role in value:
                    return (
                        f"The Principal names the role by its name, {value!r}; ECR wants its "
                        f"ARN (step 14): iam.get_role(RoleName={role!r})['Role']['Arn'], "
                        f"which reads arn:aws:iam::<account>:role/{role}."
                    )
    return None


q1 = Exercise(
    task=1,
    number=1,
    title="create the repository",
    evaluate_fn=_repository_created,
    hints=(
        "An ECR client has one call that creates a repository; its only required "
        "parameter is the repository's name.",
        'ecr.create_repository(repositoryName=...) with the lab\'s name, "myrepo" (step 6). '
        "The reply's ['repository']['repositoryUri'] is the URI you copy (step 8).",
        'response = ecr.create_repository(repositoryName="myrepo", tags=lab.tags())',
    ),
    solution_=Solution(
        file="task1_q1_create_repository.py",
        cli="aws ecr create-repository --repository-name myrepo "
        "--tags Key=labkit:created-by,Value=ecs-labkit",
        console="Amazon ECR → Repositories → Create repository → name myrepo → Create "
        "repository; copy the URI (steps 5–8).",
    ),
    expected_errors={
        "RepositoryAlreadyExistsException": "The repository exists already (an earlier run, "
        "or a terminal). Nothing to do: the check below looks at what exists.",
        "InvalidParameterException": "Repository names are lowercase letters, digits and "
        "'.', '_', '-', '/' between them.",
    },
    fingerprint_fn=_repository_made,
)

q2 = Exercise(
    task=1,
    number=2,
    title="the permission statement",
    evaluate_fn=_statement_set,
    hints=(
        "Three calls: IAM's get_role gives the role's ARN; the policy is a dict with "
        '"Version" and "Statement" (a list holding your statement: Sid, Effect, Principal, '
        "Action); ECR's set_repository_policy saves it.",
        'role_arn = iam.get_role(RoleName="Ec2instanceRole")["Role"]["Arn"]; the statement: '
        '{"Sid": "my_repository_statement", "Effect": "Allow", "Principal": {"AWS": '
        'role_arn}, "Action": list(labkit.ecr.REPOSITORY_ACTIONS)} (step 15: all actions).',
        'policy = {"Version": "2012-10-17", "Statement": [statement]}\n'
        'reply = ecr.set_repository_policy(repositoryName="myrepo", '
        "policyText=json.dumps(policy))",
    ),
    solution_=Solution(
        file="task1_q2_repository_statement.py",
        cli="aws ecr set-repository-policy --repository-name myrepo "
        "--policy-text file://my-policy.json",
        console="Amazon ECR → myrepo → Permissions → Edit policy JSON (or Add statement): "
        "name my_repository_statement, Allow, principal Ec2instanceRole, all actions → Save "
        "(steps 10–16).",
    ),
    explain_refusal=_explain_policy_refusal,
    expected_errors={
        "RepositoryNotFoundException": "The repository does not exist: do Exercise 1.1 first.",
        "NoSuchEntity": "IAM has no role by that name: the lab's is Ec2instanceRole (step 14), "
        "and role names are case-sensitive.",
        "InvalidParameterException": "ECR refused the policy. 'Principal not found': no role "
        "or user has that ARN (take Ec2instanceRole's from iam.get_role). 'Invalid repository "
        "policy provided': a Principal naming a role by name instead of its ARN, policyText "
        "that is not JSON text (json.dumps), a document without Version and Statement, a "
        "statement with a Resource, or an Action ECR does not have (a typo: "
        "labkit.ecr.REPOSITORY_ACTIONS lists the repository's).",
    },
    fingerprint_fn=_policy_text,
    own_cell_fn=_cell_holds_live_policy,
    own_work="Fill in each ____ of the exercise cell and run it: setting the same policy "
    "again counts, as your cell's policy dict shows it (`aws ecr set-repository-policy` in "
    "a terminal with the same policy changes nothing this check can see, so run the cell)",
)

TASK = Task(number=1, title="repository and permission statement", exercises=(q1, q2))

quiz = Quiz(
    1,
    (
        Question(
            "What does my_repository_statement grant, and to whom?",
            {
                "a": "Every IAM user of the account may push images to myrepo.",
                "b": "The role Ec2instanceRole, which the container instances run as, may "
                "use myrepo's actions, pulling its images included.",
                "c": "myrepo may start ECS tasks on the role's behalf.",
                "d": "Anyone on the internet may pull myrepo's images.",
            },
            "b",
            "The Principal is one role's ARN and the Actions are ECR's repository actions: "
            "without the statement, the instances could not pull your image in Task 4 "
            "(CannotPullContainerError).",
            wrong={
                "a": "The Principal names one role, not the account's users.",
                "c": "A repository policy says who may act on the repository; it lets the "
                "repository do nothing.",
                "d": 'That would need the principal "*"; yours names one role\'s ARN.',
            },
        ),
        Question(
            'Why does the statement have no "Resource"?',
            {
                "a": "ECR forgot to ask for it.",
                "b": "It is attached to the repository, so the repository is the resource; "
                "ECR refuses a repository policy statement with a Resource.",
                "c": "Without a Resource the statement covers every repository of the account.",
            },
            "b",
            "A resource-based policy lives on its resource. An identity policy (on a role "
            "or user) is the other kind: it names the Resource and has no Principal.",
            wrong={
                "c": "The policy is set on myrepo alone; other repositories have their own.",
            },
        ),
        Question(
            'Why did you look up the role\'s ARN instead of writing "Ec2instanceRole"?',
            {
                "a": 'A Principal names an IAM entity by its ARN; ECR answers "Principal '
                'not found" when no role has the ARN given.',
                "b": "Role names are secret; ARNs are not.",
                "c": "Either works: ECR turns names into ARNs.",
            },
            "a",
            "arn:aws:iam::<account>:role/Ec2instanceRole names the role in one account; the "
            "console's search (step 14) finds the ARN for you.",
            wrong={"c": 'ECR takes ARNs (or an account id, or "*"), not bare role names.'},
        ),
    ),
)
