"""The worker tests/test_multinode.py has torchrun start on each "host": `minigpt train` as the
command line gives it, plus three records the test reads afterwards, in MULTINODE_RECORDS:

  workers.jsonl               one line per worker torchrun starts: node, rank, attempt, pid
  digest.<node>.rank<R>.jsonl the weight digest this rank holds at every checkpoint, line by line
  killed.jsonl                the worker MULTINODE_KILL named, just before it SIGKILLs itself

The digests come from the weights of each rank's own model (a rank other than 0 writes no
checkpoint), so "both nodes end with identical weights" is read from both nodes, not from rank 0's
files alone. Not part of the package: test scaffolding only.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
from pathlib import Path

from minigpt.checkpoint import tensor_digest
from minigpt.cli import main

records = Path(os.environ["MULTINODE_RECORDS"])
node = os.environ["MULTINODE_NODE"]
rank = int(os.environ["RANK"])
attempt = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
with open(records / "workers.jsonl", "a", encoding="utf-8") as f:
    f.write(json.dumps({"node": node, "rank": rank, "attempt": attempt, "pid": os.getpid()}) + "\n")

train_module = importlib.import_module("minigpt.train")  # the module, not the function
_check = train_module.check_replicas_agree


def _check_and_record(d, model, step, log):
    _check(d, model, step, log)
    with open(records / f"digest.{node}.rank{rank}.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"step": step, "attempt": attempt, "pid": os.getpid(),
                            "digest": tensor_digest(model.state_dict())}) + "\n")


train_module.check_replicas_agree = _check_and_record

# MULTINODE_KILL=<node>:<step>: that node's first worker SIGKILLs itself right after the update of
# that step, between two checkpoints: the rest of the group cannot get past the next step without
# it, so the newest checkpoint is exactly the last one before <step>.
kill_node, _, kill_step = os.environ.get("MULTINODE_KILL", "").partition(":")
if node == kill_node and attempt == 0:
    _update = train_module._update_weights

    def _update_then_die(run, loss, step):
        _update(run, loss, step)
        if step == int(kill_step):
            with open(records / "killed.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps({"node": node, "rank": rank, "step": step,
                                    "pid": os.getpid()}) + "\n")
            os.kill(os.getpid(), signal.SIGKILL)

    train_module._update_weights = _update_then_die

sys.exit(main(sys.argv[1:]))
