"""The sandbox's ECS agent: services and tasks in moto's backend become real Docker containers.

One reconciler thread ticks a few times a second over moto's ecs backend (moto runs in this
process, so what the agent writes is what the API reports). Its parts, around one task table
(:mod:`~labkit.sandbox.agent.table`):

- :mod:`~labkit.sandbox.agent.hooks`: moto's ECS and Cloud Map calls made to answer as AWS does;
- :mod:`~labkit.sandbox.agent.scheduler`: services keep their desired count, roll out
  deployments within their deploymentConfiguration, place tasks, write service events;
- :mod:`~labkit.sandbox.agent.tasks`: each task's lifecycle, PENDING -> RUNNING -> STOPPED;
- :mod:`~labkit.sandbox.agent.runtime`: the Docker containers (pull as the instance role,
  publish on 127.0.0.1 only);
- :mod:`~labkit.sandbox.agent.registration`: target groups, load balancer endpoints and
  Cloud Map instances of running tasks.
"""

from __future__ import annotations

import time

from labkit.sandbox.agent.hooks import MotoHooks
from labkit.sandbox.agent.registration import Registration
from labkit.sandbox.agent.runtime import DockerRuntime
from labkit.sandbox.agent.scheduler import Scheduler
from labkit.sandbox.agent.table import TaskTable
from labkit.sandbox.agent.tasks import TaskLifecycle, count_cluster_tasks
from labkit.sandbox.context import SandboxContext, Ticker
from labkit.sandbox.loadbalancer import LoadBalancers

__all__ = ["EcsAgent"]

#: Seconds between two reconciler passes.
TICK_SECONDS = 0.25


class EcsAgent:
    """Runs the tasks of moto's ecs backend as Docker containers; see the module docstring."""

    def __init__(self, ctx: SandboxContext, lbs: LoadBalancers | None) -> None:
        self.ctx = ctx
        self.table = TaskTable()
        self._ticker = Ticker("labkit-agent", TICK_SECONDS, self._tick)
        wake = self._ticker.wake
        self.registration = Registration(ctx, lbs)
        self.lifecycle = TaskLifecycle(ctx, self.table, DockerRuntime(ctx), self.registration, wake)
        self.scheduler = Scheduler(ctx, self.table, self.lifecycle, self.registration)
        self.hooks = MotoHooks(ctx, self.table, self.scheduler, wake)

    def start(self) -> None:
        """Take over task states from moto and start the reconciler thread."""
        self.hooks.install()
        self._ticker.start()

    def stop(self) -> None:
        """Stop the reconciler, then stop and remove every container the agent started."""
        self._ticker.stop(timeout=10)
        self.lifecycle.stop_all()
        with self.ctx.lock:
            self.hooks.remove()

    def endpoints(self) -> dict[str, dict[str, str]]:
        """Task ARN -> {"containerName:containerPort": "127.0.0.1:realPort"} for running tasks."""
        return self.registration.endpoints(self.table.records())

    def _tick(self) -> None:
        docker_states = self.lifecycle.docker_states()
        now = time.monotonic()
        with self.ctx.lock:
            backend = self.ctx.backend("ecs")
            # Services first, so their state exists before their tasks are adopted.
            self.scheduler.track_services(backend)
            for cluster_tasks in list(backend.tasks.values()):
                for arn, task in list(cluster_tasks.items()):
                    if arn in self.table.tasks or arn in self.table.done:
                        continue
                    if task.last_status == "STOPPED" or task.desired_status == "STOPPED":
                        self.table.done.add(arn)
                        continue
                    self.lifecycle.adopt(task)
            for rec in self.table.records():
                self.lifecycle.advance(rec, docker_states, now)
            self.scheduler.reconcile(now)
            self.lifecycle.launch_pending()
            count_cluster_tasks(backend)
