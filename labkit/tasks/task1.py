"""Task 1 of the lab guide: create the repository ``myrepo`` and its permission statement.

- ``q1``: CreateRepository (steps 5–8), then copy the repository URI;
- ``q2``: the statement ``my_repository_statement`` allowing ``Ec2instanceRole`` the
  repository's actions, set with SetRepositoryPolicy (steps 10–16).
"""

from __future__ import annotations

from labkit import ecr
from labkit.lab import Lab
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
            f'Name the statement {sid!r} (step 12): that is its "Sid".',
        )
    statement = mine[0]
    principal = statement.get("Principal", {})
    principals = ecr.as_list(principal.get("AWS") if isinstance(principal, dict) else principal)
    if lab.instance_role_arn not in principals:
        return Verdict.wrong(
            f"{sid} allows {principals or 'nobody'}, not the role {lab.names.instance_role}",
            f"The principal is the container instances' role (step 13): look up its ARN with "
            f"iam.get_role(RoleName={lab.names.instance_role!r}) and use "
            '{"AWS": <that ARN>}.',
        )
    if statement.get("Effect") != "Allow":
        return Verdict.wrong(
            f"{sid} has Effect {statement.get('Effect')!r}", 'The statement must "Allow" (step 14).'
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
        'response = ecr.create_repository(repositoryName="myrepo")\n'
        'print(response["repository"]["repositoryUri"])',
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
)

q2 = Exercise(
    task=1,
    number=2,
    title="the permission statement",
    evaluate_fn=_statement_set,
    hints=(
        "A repository policy is a JSON document with a list of statements; each statement "
        "has a Sid, an Effect, a Principal and a list of Actions.",
        "Principal: {'AWS': <the ARN of Ec2instanceRole>} (iam.get_role gives it); Action: "
        'the console\'s "all actions", listed in labkit.ecr.REPOSITORY_ACTIONS; then '
        "ecr.set_repository_policy(repositoryName=..., policyText=json.dumps(policy)).",
        'role_arn = iam.get_role(RoleName="Ec2instanceRole")["Role"]["Arn"]\n'
        'statement = {"Sid": "my_repository_statement", "Effect": "Allow", '
        '"Principal": {"AWS": role_arn}, "Action": list(labkit.ecr.REPOSITORY_ACTIONS)}',
    ),
    solution_=Solution(
        file="task1_q2_repository_statement.py",
        cli="aws ecr set-repository-policy --repository-name myrepo "
        "--policy-text file://my-policy.json",
        console="Amazon ECR → myrepo → Permissions → Edit policy JSON (or Add statement): "
        "name my_repository_statement, Allow, principal Ec2instanceRole, all actions → Save "
        "(steps 10–16).",
    ),
    expected_errors={
        "RepositoryNotFoundException": "The repository does not exist: do Exercise 1.1 first.",
        "NoSuchEntity": "IAM has no role by that name: the lab's is Ec2instanceRole (step 13), "
        "and role names are case-sensitive.",
        "InvalidParameterException": "ECR refused the policy. 'Principal not found': no role "
        "or user has that ARN (take Ec2instanceRole's from iam.get_role). 'Invalid repository "
        "policy provided': is policyText the JSON text (json.dumps) of a document with Version "
        "and Statement, each statement without a Resource?",
    },
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
