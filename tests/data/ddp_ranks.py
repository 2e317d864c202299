"""`headfit train` under torchrun for tests/test_train_ddp.py, each rank writing what it ended with.

Started as ``python -m torch.distributed.run --nproc_per_node 2 tests/data/ddp_ranks.py OUT ARGS...``:
runs ``headfit train ARGS...`` and, when its fit ends, writes ``OUT/rank<R>.json`` with a hash of that
rank's weights (buffers included) and the steps it took. ``KILL_RANK=R KILL_AT=S`` makes rank R die
(SIGKILL) at its S-th step, as a crashed machine would.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from pathlib import Path

from headfit.cli import cli
from headfit.train import loop

OUT = Path(sys.argv[1])
RANK = int(os.environ["RANK"])
fit, step = loop.Trainer.fit, loop.Trainer._step


def weights_hash(model) -> str:
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def fit_and_record(self):
    try:
        return fit(self)
    finally:
        record = {"hash": weights_hash(self.model), "steps": self.position.step, "run": str(self.run)}
        (OUT / f"rank{RANK}.json").write_text(json.dumps(record))


def step_or_die(self, *args, **kwargs):
    if str(RANK) == os.environ.get("KILL_RANK") and self.position.step + 1 == int(os.environ["KILL_AT"]):
        os.kill(os.getpid(), signal.SIGKILL)
    return step(self, *args, **kwargs)


loop.Trainer.fit, loop.Trainer._step = fit_and_record, step_or_die
cli.main(["train", *sys.argv[2:]], prog_name="headfit")
