"""moto's ELBv2 target registrations, keyed by (target id, port) as ELB keys them.

moto keys a target group's targets by id alone, so an ECS service whose tasks share an
instance on different host ports would register one target. :class:`TargetRegistrations`
replaces moto's RegisterTargets, DeregisterTargets and instance-termination bookkeeping
(on the sandbox's backend only: :class:`~labkit.sandbox.loadbalancer.LoadBalancers` mixes
it in and shadows moto's methods with these).
"""

from __future__ import annotations

from typing import Any

from labkit.sandbox.context import SandboxContext, Ticker


def target_port(target: dict[str, Any], tg: Any) -> int | None:
    port = target.get("Port") or tg.port
    return int(port) if port else None


class TargetRegistrations:
    """moto's target registration re-keyed by (id, port); a mixin of ``LoadBalancers``."""

    ctx: SandboxContext
    _ticker: Ticker  # woken when a target registers, so its first check is not late

    @staticmethod
    def _rekey(tg: Any) -> None:
        """moto keys a target group's targets by id; re-key them by (id, port)."""
        if any(not isinstance(key, tuple) for key in tg.targets):
            entries = list(tg.targets.values())
            tg.targets.clear()
            for t in entries:
                port = target_port(t, tg)
                tg.targets[(t["Id"], port)] = {"Id": t["Id"], "Port": port}

    def _target_group(self, arn: str) -> Any:
        from moto.elbv2.exceptions import TargetGroupNotFoundError

        tg = self.ctx.backend("elbv2").target_groups.get(arn)
        if tg is None:
            raise TargetGroupNotFoundError()
        return tg

    def _register_targets(self, target_group_arn: str, instances: list[Any]) -> None:
        from moto.elbv2.exceptions import TargetNotRunning

        tg = self._target_group(target_group_arn)
        self._rekey(tg)
        for target in instances:
            instance = tg.ec2_backend.get_instance_by_id(target["Id"])
            if instance is not None and instance.state != "running":
                raise TargetNotRunning(instance_id=target["Id"])
            port = target_port(target, tg)
            tg.targets[(target["Id"], port)] = {"Id": target["Id"], "Port": port}
            tg.deregistered_targets.pop(target["Id"], None)
        self._ticker.wake.set()

    def _deregister_targets(self, target_group_arn: str, instances: list[dict[str, Any]]) -> None:
        from moto.elbv2.exceptions import InvalidTargetError

        tg = self._target_group(target_group_arn)
        self._rekey(tg)
        for target in instances:
            found = tg.targets.pop((target["Id"], target_port(target, tg)), None)
            if found is None:
                raise InvalidTargetError()
            tg.deregistered_targets[target["Id"]] = found

    def _notify_terminate_instances(self, instance_ids: list[str]) -> None:
        for tg in list(self.ctx.backend("elbv2").target_groups.values()):
            self._rekey(tg)
            for key in [k for k in tg.targets if k[0] in instance_ids]:
                tg.terminated_targets[key[0]] = tg.targets.pop(key)
