# The whole capstone in one cell (q3.solve(), the catch-up): the page, v2, the revision,
# the rollout.
import boto3

import labkit

ecs = boto3.client("ecs")
app = labkit.images.copy_sample_app("my-app")
page = app / "index.html"
page.write_text(page.read_text().replace("Congratulations!", "Version 2 is live!"))
REPOSITORY = labkit.ecr.repository_uri(lab)
labkit.shell.sh(f"docker build -t {REPOSITORY}:v2 {app}", check=True)
labkit.shell.docker_login(lab, registry=REPOSITORY.split("/")[0])
labkit.shell.sh(f"docker push {REPOSITORY}:v2", check=True)
current = ecs.describe_task_definition(taskDefinition="ecs-demo")["taskDefinition"]
container = current["containerDefinitions"][0]
container["image"] = f"{REPOSITORY}:v2"
new_arn = ecs.register_task_definition(
    family="ecs-demo",
    containerDefinitions=[container],
    requiresCompatibilities=["EC2"],
    tags=lab.tags("key"),
)["taskDefinition"]["taskDefinitionArn"]
probe = labkit.network.probe_page(lab)
with q3.attempt():
    ecs.update_service(
        cluster="ECSCluster",
        service=lab.service_name,
        taskDefinition=new_arn,
        desiredCount=2,
        deploymentConfiguration={"minimumHealthyPercent": 50, "maximumPercent": 200},
        forceNewDeployment=True,
    )
    labkit.ecs.watch(lab, until=labkit.ecs.rolled_out(new_arn), timeout=300)
print(probe.stop())
