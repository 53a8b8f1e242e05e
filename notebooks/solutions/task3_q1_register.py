import labkit

with q1.attempt():
    labkit.taskdef.register_lab_task_definition(lab)
