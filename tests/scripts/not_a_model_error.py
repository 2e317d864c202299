"""A script that fails in its own bookkeeping, far from any model."""

import json

config = json.loads('{"epochs": 3}')
print("epochs:", config["epochs"])
learning_rate = config["lr"]
