"""``headfit train``: fine-tune a model on the user's data into a run directory people can read.

The core (``loop``, ``state``, ``metrics``, ``progress``, ``schedule``, ``ema``, ``sampler``) knows no
task; ``detection`` is the first task (see ``task.py`` for what a task provides).
"""
