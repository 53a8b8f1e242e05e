"""Notebook 05, beyond the lab guide: operate the service of Task 4.

- ``q1``: scale to 3 with ``update_service``; two tasks run (one per instance, each holds
  its host's port 80) and the learner reads ECS's event on why the third cannot be
  placed (``q1.check(placement_event)``);
- ``q2``: stop a task with ``stop_task`` and watch ECS replace it
  (``q2.check(stopped_arn)``);
- ``q3``, the capstone: change the page, build and push ``:v2``, register the next
  revision, roll it out with ``update_service`` while the page is fetched through the
  load balancer throughout (``q3.check(probe)``: v2 at the end, no failed request).

Only the capstone decides whether the task is done (``TASK``): scaling and stopping leave
no lasting state to read, and the catch-up needs only the capstone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from labkit import ecr, ecs, network
from labkit.images import SAMPLE_APP_DIR
from labkit.lab import Lab
from labkit.network import PageProbe
from labkit.taskdef import V2_TAG
from labkit.tasks.exercise import Exercise, Solution, Task, Verdict, ____
from labkit.tasks.understanding import Question, Quiz

__all__ = ["TASK", "q1", "q2", "q3", "quiz", "____"]

#: ECS's words for the third task (service event, and RunTask's failure reason).
PORT_TAKEN = "is already using a port required by your task"


def _text(answer: Any) -> str:
    return str(answer)[:160]


# -- q1: scale to 3 ------------------------------------------------------------------


def _placement_events(lab: Lab) -> list[str]:
    service = ecs.require_service(lab)
    return [e["message"] for e in service.get("events", []) if PORT_TAKEN in e["message"]]


def _scaled(lab: Lab) -> Verdict:
    if not _placement_events(lab):
        return Verdict.wrong(
            f"ECS has not said it could not place a task of {lab.service_name}",
            "Ask for 3 tasks: ecs.update_service(cluster='ECSCluster', "
            "service=lab.service_name, desiredCount=3), then watch.",
        )
    return Verdict.ok("ECS placed what fits and said why the third task waits")


def _placement_answer(lab: Lab, answer: Any) -> Verdict:
    events = _placement_events(lab)
    if answer in events:
        return Verdict.ok(f"you read it: {answer}")
    if isinstance(answer, dict) and answer.get("message") in events:
        return Verdict.ok(f"you read it: {answer['message']}")
    return Verdict.wrong(
        f"placement_event is {_text(answer)!r}, not ECS's event about the third task",
        "describe_services(...)['services'][0]['events'] lists the newest first; keep the "
        f"'message' of the one with {PORT_TAKEN!r}.",
    )


q1 = Exercise(
    task=5,
    number=1,
    title="scale to 3, read why one waits",
    evaluate_fn=_scaled,
    answer_fn=_placement_answer,
    hints=(
        "The ECS client's update_service changes a running service in place: cluster, "
        "service and the new desiredCount.",
        "ecs.update_service(cluster='ECSCluster', service=lab.service_name, desiredCount=3); "
        "then events = ecs.describe_services(cluster='ECSCluster', "
        "services=[lab.service_name])['services'][0]['events'].",
        "placement_event = next(e['message'] for e in events if 'unable to place' in e['message'])",
    ),
    solution_=Solution(
        file="task5_q1_scale.py",
        cli="aws ecs update-service --cluster ECSCluster --service MYSERVICE<n> "
        "--desired-count 3\naws ecs describe-services --cluster ECSCluster --services "
        "MYSERVICE<n> --query 'services[0].events[:3].message'",
        console="ECS → Clusters → ECSCluster → Services → MYSERVICE<n> → Update service: "
        "Desired tasks 3 → Update; then the Events tab.",
    ),
    expected_errors={
        "ServiceNotFoundException": "No service of that name in ECSCluster: it is "
        "lab.service_name (Task 4).",
        "ClusterNotFoundException": "The cluster is ECSCluster.",
    },
)


# -- q2: stop a task, watch it replaced --------------------------------------------


def _task(lab: Lab, arn: str) -> dict[str, Any] | None:
    reply = lab.ecs.describe_tasks(cluster=lab.names.cluster, tasks=[arn])
    return next(iter(reply.get("tasks", [])), None)


def _replaced_any(lab: Lab) -> Verdict:
    service = ecs.require_service(lab)
    if service["runningCount"] < 1:
        return Verdict.wrong(
            f"{lab.service_name} runs no task{ecs.last_stop_note(lab)}",
            "Wait: ECS starts a replacement within seconds here (minutes on AWS).",
        )
    return Verdict.ok(f"{lab.service_name} runs {service['runningCount']} task(s)")


def _stopped_answer(lab: Lab, answer: Any) -> Verdict:
    if not isinstance(answer, str) or ":task/" not in answer:
        return Verdict.wrong(
            f"stopped_arn is {_text(answer)!r}, not a task ARN",
            "Keep the taskArn you passed to stop_task (list_tasks gives the ARNs).",
        )
    task = _task(lab, answer)
    if task is None or task.get("group") != f"service:{lab.service_name}":
        return Verdict.wrong(
            f"{answer} is not a task of {lab.service_name}",
            "list_tasks(cluster='ECSCluster', serviceName=lab.service_name) lists its tasks.",
        )
    if task.get("desiredStatus") != "STOPPED":
        return Verdict.wrong(
            f"task {answer.rsplit('/', 1)[-1]} is still {task.get('lastStatus')}",
            "Stop it: ecs.stop_task(cluster='ECSCluster', task=stopped_arn, reason=...).",
        )
    stopped_at = task.get("stoppingAt") or task.get("stoppedAt") or task.get("createdAt")
    newer = [t for t in ecs.tasks(lab) if t.get("createdAt") and t["createdAt"] >= stopped_at]
    if not newer:
        return Verdict.wrong(
            "no task has started since you stopped yours",
            "Watch a little longer: the scheduler replaces a stopped task of a service.",
        )
    return Verdict.ok(
        f"you stopped {answer.rsplit('/', 1)[-1]} ({task.get('stoppedReason', '')}); ECS "
        f"started {newer[0]['taskArn'].rsplit('/', 1)[-1]} in its place"
    )


q2 = Exercise(
    task=5,
    number=2,
    title="stop a task, watch it replaced",
    evaluate_fn=_replaced_any,
    answer_fn=_stopped_answer,
    hints=(
        "list_tasks names the service's running tasks; stop_task stops one (cluster, task, "
        "and a reason that ECS keeps as stoppedReason).",
        "stopped_arn = ecs.list_tasks(cluster='ECSCluster', serviceName=lab.service_name)"
        "['taskArns'][0]",
        "ecs.stop_task(cluster='ECSCluster', task=stopped_arn, reason='Stopped in notebook 05')",
    ),
    solution_=Solution(
        file="task5_q2_stop_task.py",
        cli="aws ecs list-tasks --cluster ECSCluster --service-name MYSERVICE<n>\n"
        "aws ecs stop-task --cluster ECSCluster --task <TASK ARN> --reason 'a test'",
        console="Service → Tasks tab → select a task → Stop; refresh: a new task appears.",
    ),
    expected_errors={
        "InvalidParameterException": "stop_task wants the task's ARN or id (list_tasks).",
        "ClusterNotFoundException": "The cluster is ECSCluster.",
    },
)


# -- q3, the capstone: v2, rolled out without a failed request ------------------------


def _v2_image(lab: Lab) -> str:
    return f"{ecr.repository_uri(lab)}:{V2_TAG}"


def _rolled_out(lab: Lab) -> Verdict:
    service = ecs.require_service(lab)
    try:
        lab.ecr.describe_images(repositoryName=lab.repository_name, imageIds=[{"imageTag": V2_TAG}])
    except lab.ecr.exceptions.ImageNotFoundException:
        return Verdict.wrong(
            f"{lab.repository_name} has no image tagged {V2_TAG}",
            f"Build my-app as $REPOSITORY:{V2_TAG} and push it (Task 2's login and push).",
        )
    definition = lab.ecs.describe_task_definition(taskDefinition=service["taskDefinition"])
    image = definition["taskDefinition"]["containerDefinitions"][0]["image"]
    if image != _v2_image(lab):
        return Verdict.wrong(
            f"{lab.service_name} runs {service['taskDefinition'].rsplit('/', 1)[-1]} with "
            f"image {image}, not :{V2_TAG}",
            "Register a revision whose image is $REPOSITORY:v2, then update_service with "
            "taskDefinition=its ARN.",
        )
    if not ecs.is_steady(service):
        return Verdict.wrong(
            f"the rollout of {lab.service_name} has not finished "
            f"({len(service['deployments'])} deployments){ecs.last_stop_note(lab)}",
            "Events view: 'unable to place a task' means no room: with 2 tasks holding both "
            "port 80s, minimumHealthyPercent 50 lets ECS stop one first (quiz question 2).",
        )
    page = network.fetch_page(network.load_balancer_url(lab), attempts=3, delay=1).body
    if page == (SAMPLE_APP_DIR / "index.html").read_text():
        return Verdict.wrong(
            "the load balancer still serves the unchanged page",
            "Change my-app/index.html, then build, push and roll out again.",
        )
    return Verdict.ok(f"{lab.service_name} runs :{V2_TAG}, steady, serving your new page")


def _probe_answer(lab: Lab, probe: Any) -> Verdict:
    if not isinstance(probe, PageProbe):
        return Verdict.wrong(
            f"the check wants the probe, not {_text(probe)!r}",
            "Pass the probe that watched the rollout: q3.check(probe).",
        )
    probe.stop()
    service = ecs.require_service(lab)
    created = service["deployments"][0].get("createdAt")
    if not isinstance(created, datetime) or created.timestamp() < probe.started_at - 1:
        return Verdict.wrong(
            "no rollout started while the probe watched the page",
            "Start the probe, then update_service with the new revision in the same cell.",
        )
    if probe.failures:
        seconds, what = probe.failures[0]
        return Verdict.wrong(
            f"{len(probe.failures)} of {probe.requests} requests failed during the rollout "
            f"(the first after {seconds:.1f} s: {what})",
            "A rollout that stops every old task before a new one is healthy leaves no "
            "target: keep minimumHealthyPercent above 0 (50 with 2 tasks).",
        )
    if probe.last_body == (SAMPLE_APP_DIR / "index.html").read_text():
        return Verdict.wrong("the probe's last page is the unchanged one", "Change the page.")
    return Verdict.ok(
        f"{probe.requests} requests through the load balancer during the rollout, none "
        f"failed; {len(probe.bodies)} distinct page(s), the last one yours (:{V2_TAG})"
    )


q3 = Exercise(
    task=5,
    number=3,
    title="capstone: roll out v2 without a failed request",
    evaluate_fn=_rolled_out,
    answer_fn=_probe_answer,
    hints=(
        "update_service with taskDefinition (the new revision's ARN) starts a rolling "
        "deployment; deploymentConfiguration says how many tasks may be down or extra.",
        "ecs.update_service(cluster='ECSCluster', service=lab.service_name, "
        "taskDefinition=new_arn, deploymentConfiguration={'minimumHealthyPercent': 50, "
        "'maximumPercent': 200})",
        "Revision: container['image'] = f'{REPOSITORY}:v2'; ecs.register_task_definition("
        "family='ecs-demo', containerDefinitions=[container], requiresCompatibilities="
        "['EC2'], tags=lab.tags('key'))['taskDefinition']['taskDefinitionArn']",
    ),
    solution_=Solution(
        file="task5_q3_capstone.py",
        cli="docker build -t $REPOSITORY:v2 my-app && docker push $REPOSITORY:v2\n"
        "aws ecs register-task-definition --cli-input-json file://v2.json\n"
        "aws ecs update-service --cluster ECSCluster --service MYSERVICE<n> "
        "--task-definition ecs-demo --deployment-configuration "
        "minimumHealthyPercent=50,maximumPercent=200",
        console="Task definitions → ecs-demo → Create new revision (image :v2); Service → "
        "Update: revision latest, Minimum healthy percent 50 → Update.",
    ),
    expected_errors={
        "ClientException": "ECS refused the revision: its message names the field.",
        "InvalidParameterException": "ECS refused a value: taskDefinition is the new "
        "revision's ARN; the percentages are whole numbers.",
    },
)


# -- check your understanding --------------------------------------------------------

quiz = Quiz(
    5,
    [
        Question(
            "Two container instances, desiredCount 3: why does the third task wait?",
            {
                "a": "ECS runs at most two tasks per service",
                "b": "each task maps host port 80, and each instance has one port 80: "
                "both are taken",
                "c": "the load balancer has only two listeners",
            },
            "b",
            "Bridge mode with hostPort 80: one such task per instance. More room: more "
            "instances, or dynamic host ports (hostPort 0), which the target group follows.",
        ),
        Question(
            "Two tasks, both port 80s taken, a new revision: what does "
            "minimumHealthyPercent 50 allow?",
            {
                "a": "ECS may stop one old task first (1 of 2 healthy is 50 %), start a new "
                "one in its place, then do the same with the other",
                "b": "half the requests may fail",
                "c": "ECS runs the new revision on half the instances forever",
            },
            "a",
            "At the default 100 ECS may not go below 2 healthy tasks, must start a new one "
            "first, finds no free port 80, and waits. maximumPercent caps the extra tasks.",
        ),
        Question(
            "You stopped a task of the service. Who started the new one?",
            {
                "a": "the load balancer's health check",
                "b": "the ECS service scheduler: the service wants desiredCount running",
                "c": "Cloud Map",
            },
            "b",
            "The scheduler keeps desiredCount tasks running; the load balancer only sends "
            "traffic, Cloud Map only names the tasks.",
        ),
    ],
)

TASK = Task(number=5, title="operate the service", exercises=(q3,))
