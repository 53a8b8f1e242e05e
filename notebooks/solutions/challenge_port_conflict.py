# Stuck? challenge.hint("port-conflict") shows a clue (each costs points).
with challenge.attempt("port-conflict"):
    instances = ecs.list_container_instances(cluster="ECSCluster")["containerInstanceArns"]
    print(len(instances), "container instances")
    # How many tasks can each have host port 80?
    ecs.update_service(cluster="ECSCluster", service=lab.service_name, desiredCount=len(instances))
