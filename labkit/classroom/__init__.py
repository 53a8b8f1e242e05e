"""A classroom on one host: JupyterHub, one private lab per learner, the instructor's board.

``labkit classroom up --roster learners.txt`` (as root) creates one Unix account per
learner (private home), starts JupyterHub on the given address, and each learner's server
gets their own rootless Docker Engine and their own sandbox, whose API answers only their
keys. ``labkit classroom status`` is the board; ``down`` stops everything it started.
See docs/classroom.md.
"""
