import labkit

with q1.attempt():
    labkit.ecs.ensure_service(lab)
    labkit.ecs.wait_until_steady(lab)
