"""The sandbox's lifecycle: up, status, env, down, and recovery after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from labkit.sandbox import lifecycle
from labkit.sandbox.context import Settings
from labkit.sandbox.processes import recorded_pid
from tests.conftest import client_factory, require_data_plane, untag

pytestmark = pytest.mark.sandbox


def listening_sockets(pids: set[int]) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state owned by one of ``pids``."""
    inodes: set[str] = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            for fd in fd_dir.iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A = LISTEN
                continue
            hex_addr, hex_port = fields[1].split(":")
            if len(hex_addr) == 8:
                addr = ".".join(str(int(hex_addr[i : i + 2], 16)) for i in (6, 4, 2, 0))
            else:
                addr = "ipv6:" + hex_addr
            found.append((addr, int(hex_port, 16)))
    return found


def process_tree(root: int) -> set[int]:
    pids = {root}
    changed = True
    while changed:
        changed = False
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid, ppid = int(stat.parent.name), int(fields[1])
            if ppid in pids and pid not in pids:
                pids.add(pid)
                changed = True
    return pids


def test_up_is_idempotent_and_status_reports_every_part(sandbox: Any) -> None:
    again = lifecycle.up(sandbox.settings)
    assert again.pid == sandbox.pid
    assert again.running and again.docker
    assert set(again.components.values()) == {"running"}
    assert again.load_balancers, "the lab's load balancer should have a loopback URL"
    for url in again.load_balancers.values():
        assert url.startswith("http://127.0.0.1:")


def test_cli_status_json_and_env(sandbox: Any) -> None:
    env = dict(os.environ, **lifecycle._child_env(sandbox.settings))
    out = subprocess.run(
        [sys.executable, "-m", "labkit.cli", "sandbox", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["pid"] == sandbox.pid
    lines = subprocess.run(
        [sys.executable, "-m", "labkit.cli", "sandbox", "env"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    assert f"export AWS_ENDPOINT_URL={sandbox.api_url}" in lines


def test_env_lets_a_plain_boto3_script_reach_the_sandbox(sandbox: Any) -> None:
    script = (
        "import boto3; print(boto3.client('sts').get_caller_identity()['Account']);"
        "print(boto3.client('ecs').describe_clusters(clusters=['ECSCluster'])"
        "['clusters'][0]['registeredContainerInstancesCount'])"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(lifecycle.env(sandbox.settings))
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.split() == [sandbox.account_id, "2"], out.stderr


def test_pre_provisioned_environment_matches_the_lab(aws: Any) -> None:
    iam, elbv2 = aws("iam"), aws("elbv2")
    assert iam.get_role(RoleName="Ec2instanceRole")["Role"]["RoleName"] == "Ec2instanceRole"
    assert iam.get_role(RoleName="ecsServiceRole")["Role"]["RoleName"] == "ecsServiceRole"
    lb = elbv2.describe_load_balancers(Names=["Myloadbalancer"])["LoadBalancers"][0]
    assert lb["Type"] == "network"
    tg = elbv2.describe_target_groups(Names=["myTargetgroup"])["TargetGroups"][0]
    assert (tg["Protocol"], tg["Port"]) == ("TCP", 80)
    listeners = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    assert [(x["Protocol"], x["Port"]) for x in listeners] == [("TCP", 80)]
    # Nothing from the learner's tasks exists yet.
    assert aws("ecs").list_services(cluster="ECSCluster")["serviceArns"] == []


def test_every_listening_socket_is_on_loopback(sandbox: Any) -> None:
    pids = process_tree(sandbox.pid)
    registry_pid = recorded_pid(Path(sandbox.home) / "registry.pid")
    assert registry_pid is not None
    pids |= process_tree(registry_pid)
    sockets = listening_sockets(pids)
    assert sockets, "the sandbox should be listening somewhere"
    assert {addr for addr, _ in sockets} == {"127.0.0.1"}, sockets
    ports = {port for _, port in sockets}
    assert {sandbox.settings.api_port, sandbox.settings.registry_port} <= ports


def test_killed_sandbox_recovers_images_and_leaves_no_orphans(
    tmp_path: Path, sample_image: str, docker_client: Any
) -> None:
    require_data_plane()
    settings = Settings.on_free_ports(tmp_path / "home")
    first = lifecycle.up(settings)
    try:
        aws = client_factory(settings)
        ecr = aws("ecr")
        created = ecr.create_repository(
            repositoryName="survivor", tags=[{"Key": "labkit:created-by", "Value": "ecs-labkit"}]
        )["repository"]
        uri = created["repositoryUri"]
        ecr.set_repository_policy(
            repositoryName="survivor",
            policyText=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "keep",
                            "Effect": "Allow",
                            "Principal": {"AWS": "arn:aws:iam::123456789012:role/Ec2instanceRole"},
                            "Action": "ecr:*",
                        }
                    ],
                }
            ),
        )
        import base64

        token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
        user, password = base64.b64decode(token).decode().split(":", 1)
        image = docker_client.images.get(sample_image)
        image.tag(uri, "v1")
        auth = {"username": user, "password": password}
        docker_client.images.push(uri, tag="v1", auth_config=auth)
        digest = ecr.describe_images(repositoryName="survivor")["imageDetails"][0]["imageDigest"]

        # An orphan: a container labelled as this sandbox's, as a killed agent leaves it.
        from labkit.sandbox.context import CONTAINER_LABEL

        docker_client.containers.run(
            sample_image, detach=True, labels={CONTAINER_LABEL: str(settings.home)}
        )
        os.kill(first.pid, signal.SIGKILL)
        time.sleep(0.5)
        assert not lifecycle.status(settings).running

        second = lifecycle.up(settings)
        assert second.running and second.pid != first.pid
        leftovers = docker_client.containers.list(
            all=True, filters={"label": f"{CONTAINER_LABEL}={settings.home}"}
        )
        assert leftovers == []
        ecr = client_factory(settings)("ecr")
        details = ecr.describe_images(repositoryName="survivor")["imageDetails"]
        assert [(d["imageDigest"], d["imageTags"]) for d in details] == [(digest, ["v1"])]
        assert ecr.list_tags_for_resource(resourceArn=created["repositoryArn"])["tags"] == [
            {"Key": "labkit:created-by", "Value": "ecs-labkit"}
        ]
        assert (
            "Ec2instanceRole" in ecr.get_repository_policy(repositoryName="survivor")["policyText"]
        )
        docker_client.images.remove(f"{uri}:v1")
        token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
        user, password = base64.b64decode(token).decode().split(":", 1)
        pulled = docker_client.images.pull(
            uri, tag="v1", auth_config={"username": user, "password": password}
        )
        assert f"{uri}@{digest}" in pulled.attrs["RepoDigests"]
    finally:
        message = lifecycle.down(settings)
        untag(docker_client, [f"{settings.registry_host}/survivor:v1"])  # tagged, pulled here
    assert "sandbox process" in message
    assert not lifecycle.status(settings).running
    assert (
        docker_client.containers.list(
            all=True, filters={"label": f"labkit.sandbox.home={settings.home}"}
        )
        == []
    )


def test_image_pushed_at_survives_down_and_up(
    tmp_path: Path, sample_image: str, docker_client: Any
) -> None:
    """On AWS an image's imagePushedAt changes only when it is pushed: a sandbox restarted
    (say, the next day) lists the same image with the same digest and the same time."""
    require_data_plane()
    import base64

    settings = Settings.on_free_ports(tmp_path / "home")
    lifecycle.up(settings)
    try:
        ecr = client_factory(settings)("ecr")
        uri = ecr.create_repository(repositoryName="pushed-once")["repository"]["repositoryUri"]
        token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
        user, password = base64.b64decode(token).decode().split(":", 1)
        docker_client.images.get(sample_image).tag(uri, "v1")
        docker_client.images.push(
            uri, tag="v1", auth_config={"username": user, "password": password}
        )
        before = ecr.describe_images(repositoryName="pushed-once")["imageDetails"]
        assert len(before) == 1
        lifecycle.down(settings)
        time.sleep(1.5)  # imagePushedAt has whole seconds: a new stamp would differ
        lifecycle.up(settings)
        ecr = client_factory(settings)("ecr")
        after = ecr.describe_images(repositoryName="pushed-once")["imageDetails"]
        assert [(d["imageDigest"], d["imagePushedAt"]) for d in after] == [
            (before[0]["imageDigest"], before[0]["imagePushedAt"])
        ]
        docker_client.images.remove(f"{uri}:v1")
    finally:
        lifecycle.down(settings)


def test_down_when_not_running_says_so(tmp_path: Path) -> None:
    settings = Settings.on_free_ports(tmp_path / "never-started")
    assert "not running" in lifecycle.down(settings)
    st = lifecycle.status(settings)
    assert not st.running and "labkit sandbox up" in st.describe()


def test_up_removes_only_its_own_leftover_container_holding_its_port(
    tmp_path: Path, sample_image: str, docker_client: Any
) -> None:
    """`up` asks Docker only when a port is taken, and frees it only from its own containers."""
    from labkit.errors import BackendError
    from labkit.sandbox.context import CONTAINER_LABEL, LOOPBACK

    settings = Settings.on_free_ports(tmp_path / "home")
    publish = {"80/tcp": (LOOPBACK, settings.registry_port)}
    stranger = docker_client.containers.run(sample_image, detach=True, ports=publish)
    try:
        with pytest.raises(BackendError, match="registry port .* is taken"):
            lifecycle.up(settings)
        stranger.reload()
        assert stranger.status == "running"  # not the kit's: left alone
    finally:
        stranger.remove(force=True)
    # As a killed sandbox's registry container would hold it.
    leftover = docker_client.containers.run(
        sample_image, detach=True, ports=publish, labels={CONTAINER_LABEL: str(settings.home)}
    )
    try:
        assert lifecycle.up(settings).running
        assert docker_client.containers.list(all=True, filters={"id": leftover.id}) == []
    finally:
        lifecycle.down(settings)


def _push_sample(settings: Settings, docker_client: Any, sample_image: str, name: str) -> str:
    """A repository the container instances may pull from, holding the sample image."""
    import base64

    ecr = client_factory(settings)("ecr")
    uri = ecr.create_repository(repositoryName=name)["repository"]["repositoryUri"]
    statement = {
        "Sid": "instances",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::123456789012:role/Ec2instanceRole"},
        "Action": "ecr:*",
    }
    ecr.set_repository_policy(
        repositoryName=name,
        policyText=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
    )
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, password = base64.b64decode(token).decode().split(":", 1)
    docker_client.images.get(sample_image).tag(uri, "latest")
    docker_client.images.push(
        uri, tag="latest", auth_config={"username": user, "password": password}
    )
    docker_client.images.remove(f"{uri}:latest")
    return f"{uri}:latest"


def test_service_survives_down_up_and_a_killed_sandbox(
    tmp_path: Path, sample_image: str, docker_client: Any
) -> None:
    """ECS, target registrations and Cloud Map come back; old containers do not linger."""
    from botocore.config import Config

    from labkit.sandbox.context import CONTAINER_LABEL
    from tests.sandbox.helpers import serves_page, wait_for

    require_data_plane()
    settings = Settings.on_free_ports(tmp_path / "home")
    first = lifecycle.up(settings)
    try:
        image = _push_sample(settings, docker_client, sample_image, "survivor")
        aws = client_factory(settings)
        ecs, elbv2 = aws("ecs"), aws("elbv2")
        sd = aws("servicediscovery", config=Config(inject_host_prefix=False))
        td = ecs.register_task_definition(
            family="survivor",
            containerDefinitions=[
                {
                    "name": "web",
                    "image": image,
                    "memory": 128,
                    "portMappings": [{"containerPort": 80, "hostPort": 80}],
                }
            ],
        )["taskDefinition"]["taskDefinitionArn"]
        retired = ecs.register_task_definition(
            family="survivor", containerDefinitions=[{"name": "web", "image": image, "memory": 64}]
        )["taskDefinition"]["taskDefinitionArn"]
        ecs.deregister_task_definition(taskDefinition=retired)
        tg = elbv2.describe_target_groups(Names=["myTargetgroup"])["TargetGroups"][0]
        vpc = tg["VpcId"]
        sd.create_private_dns_namespace(Name="survivor.local", Vpc=vpc)
        namespace = sd.list_namespaces()["Namespaces"][0]
        # A second namespace in the same VPC (one made while exploring): AWS allows it.
        sd.create_private_dns_namespace(Name="explored.local", Vpc=vpc)
        discovery = sd.create_service(
            Name="survivor",
            NamespaceId=namespace["Id"],
            DnsConfig={"DnsRecords": [{"Type": "SRV", "TTL": 10}]},
            Tags=[{"Key": "labkit:created-by", "Value": "ecs-labkit"}],
        )["Service"]
        config = {"minimumHealthyPercent": 50, "maximumPercent": 200}
        service = ecs.create_service(
            cluster="ECSCluster",
            serviceName="survivor",
            taskDefinition=td,
            desiredCount=1,
            launchType="EC2",
            deploymentConfiguration=config,
            healthCheckGracePeriodSeconds=5,
            loadBalancers=[
                {
                    "targetGroupArn": tg["TargetGroupArn"],
                    "containerName": "web",
                    "containerPort": 80,
                }
            ],
            serviceRegistries=[
                {"registryArn": discovery["Arn"], "containerName": "web", "containerPort": 80}
            ],
        )["service"]
        lb_url = next(iter(first.load_balancers.values()))
        wait_for(lambda: serves_page(lb_url), 60, every=0.1)
        before_events = ecs.describe_services(cluster="ECSCluster", services=["survivor"])[
            "services"
        ][0]["events"]

        def restarted(how: str, pid: int) -> float:
            mine = {"label": f"{CONTAINER_LABEL}={settings.home}"}
            old = {c["Id"] for c in docker_client.api.containers(all=True, filters=mine)}
            assert old, "the service's task runs in a container"
            if how == "down":
                lifecycle.down(settings)
            else:
                os.kill(pid, signal.SIGKILL)
                wait_for(lambda: not lifecycle.status(settings).running, 10)
            t0 = time.monotonic()
            status = lifecycle.up(settings)
            url = next(iter(status.load_balancers.values()))
            wait_for(lambda: serves_page(url), 90, every=0.1)
            seconds = time.monotonic() - t0
            aws = client_factory(settings)
            ecs, elbv2 = aws("ecs"), aws("elbv2")
            sd = aws("servicediscovery", config=Config(inject_host_prefix=False))
            (after,) = ecs.describe_services(cluster="ECSCluster", services=["survivor"])[
                "services"
            ]
            assert after["serviceArn"] == service["serviceArn"]
            assert (after["status"], after["taskDefinition"]) == ("ACTIVE", td)
            assert after["loadBalancers"][0]["targetGroupArn"] == tg["TargetGroupArn"]
            registry = {
                "registryArn": discovery["Arn"],
                "containerName": "web",
                "containerPort": 80,
            }
            assert after["serviceRegistries"] == [registry]
            # Created without a role: ECS's service-linked role, still there after the restart.
            assert after["roleArn"] == service["roleArn"]
            assert service["roleArn"].endswith("/ecs.amazonaws.com/AWSServiceRoleForECS")
            linked = aws("iam").get_role(RoleName="AWSServiceRoleForECS")["Role"]
            assert linked["Arn"] == service["roleArn"]
            kept = after["deploymentConfiguration"]
            assert (kept["minimumHealthyPercent"], kept["maximumPercent"]) == (50, 200)
            assert after["healthCheckGracePeriodSeconds"] == 5
            kept_td = ecs.describe_task_definition(taskDefinition=retired)["taskDefinition"]
            assert (kept_td["revision"], kept_td["status"]) == (2, "INACTIVE")
            assert {e["id"] for e in before_events} <= {e["id"] for e in after["events"]}
            # Tasks started afresh: the service's running task, its target, its instance.
            arns = ecs.list_tasks(cluster="ECSCluster", serviceName="survivor")["taskArns"]
            (task,) = ecs.describe_tasks(cluster="ECSCluster", tasks=arns)["tasks"]
            targets = elbv2.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])
            assert len(targets["TargetHealthDescriptions"]) == 1
            instances = sd.list_instances(ServiceId=discovery["Id"])["Instances"]
            assert [i["Id"] for i in instances] == [task["taskArn"].split("/")[-1]]
            assert sd.get_namespace(Id=namespace["Id"])["Namespace"]["Name"] == "survivor.local"
            names = sorted(n["Name"] for n in sd.list_namespaces()["Namespaces"])
            assert names == ["explored.local", "survivor.local"]
            tags = sd.list_tags_for_resource(ResourceARN=discovery["Arn"])["Tags"]
            assert tags == [{"Key": "labkit:created-by", "Value": "ecs-labkit"}]
            # No orphans: no container from before, only the running task's own.
            ours = docker_client.containers.list(all=True, filters=mine)
            assert not old & {c.id for c in ours}
            assert [c.labels["com.amazonaws.ecs.task-arn"] for c in ours] == [task["taskArn"]]
            state = settings.home / "services.json"
            assert state.stat().st_mode & 0o777 == 0o600
            return seconds

        after_down = restarted("down", first.pid)
        after_kill = restarted("kill", lifecycle.status(settings).pid)
        print(f"\nup -> page again: after down {after_down:.2f}s, after SIGKILL {after_kill:.2f}s")
    finally:
        lifecycle.down(settings)
        # A SIGKILLed sandbox cannot untag what its agent pulled; the next one did not make it.
        untag(docker_client, [f"{settings.registry_host}/survivor:latest"])
    assert (
        docker_client.containers.list(
            all=True, filters={"label": f"labkit.sandbox.home={settings.home}"}
        )
        == []
    )
