"""The embedded offline sandbox: a local AWS for exactly this lab.

One background process (``labkit sandbox up``) that outlives any notebook kernel:

- ``api``: moto serves ECR, ECS, ELBv2, EC2, IAM, STS and Cloud Map on one endpoint,
  plus the sandbox's own ``/_labkit/*`` routes (health, status);
- ``registry``: a real CNCF distribution registry behind ECR-style token auth;
- ``agent``: runs ECS services and tasks as real Docker containers;
- ``loadbalancer``: each NLB listener is a real TCP proxy on 127.0.0.1, routing to the
  targets that pass real health checks (``health_probe``: one check of one target;
  ``target_registrations``: moto's targets keyed by id and port, as ELB keys them);

Public API (everything else in this package is private)::

    from labkit import sandbox
    sandbox.up()        # start, or reuse the running one; returns SandboxStatus
    sandbox.status()    # SandboxStatus (running or not), never raises
    sandbox.env()       # {"AWS_ENDPOINT_URL": ..., "AWS_DEFAULT_REGION": ..., ...}
    sandbox.down()      # stop everything the sandbox started, and nothing else
"""

from labkit.sandbox.lifecycle import SandboxStatus, down, env, status, up

__all__ = ["SandboxStatus", "down", "env", "status", "up"]
