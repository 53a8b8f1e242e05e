"""Task 4 of the lab guide: the service behind the load balancer (steps 35–59)."""

from __future__ import annotations

from labkit import ecs, network
from labkit.lab import Lab
from labkit.tasks.exercise import Exercise, Solution, Task, Verdict, ____

__all__ = ["TASK", "q1", "____"]


def _service_serving(lab: Lab) -> Verdict:
    service = ecs.find_service(lab)
    if service is None:
        return Verdict.wrong(f"service {lab.service_name} does not exist", "Create the service.")
    if service.get("launchType") != "EC2":
        return Verdict.wrong(
            f"launch type is {service.get('launchType')}, expected EC2", "Use launchType EC2."
        )
    if not any(
        lb.get("containerName") == lab.names.container_name and lb.get("containerPort") == 80
        for lb in service.get("loadBalancers", [])
    ):
        return Verdict.wrong(
            "the service is not attached to the target group (ecs-sample:80)",
            "Pass loadBalancers with the target group ARN, container ecs-sample, port 80.",
        )
    if not service.get("serviceRegistries"):
        return Verdict.wrong("service discovery is not enabled", "Pass serviceRegistries.")
    if service["runningCount"] < 1:
        return Verdict.wrong(
            f"no task is running yet ({service['pendingCount']} pending)",
            "Wait for a steady state, then check again.",
        )
    page = network.fetch_page(network.load_balancer_url(lab), attempts=5, delay=2)
    return Verdict.ok(
        f"{lab.service_name}: {service['runningCount']} running; "
        f"the load balancer answers HTTP {page.status}"
    )


q1 = Exercise(
    task=4,
    number=1,
    title="service behind the load balancer",
    evaluate_fn=_service_serving,
    hints=("Create the service (EC2, 1 task, myTargetgroup, ecsServiceRole, discovery).",),
    solution_=Solution(
        file="task4_q1_create_service.py",
        cli="aws ecs create-service --cluster ECSCluster --service-name MYSERVICE<n> ...",
        console="ECS → Clusters → ECSCluster → Services → Create (steps 35–48)",
    ),
)

TASK = Task(number=4, title="service behind the load balancer", exercises=(q1,))
