"""Multi-node for real: two "hosts" in Linux network namespaces joined by a veth pair, one
`torchrun --nnodes 2` agent in each, c10d rendezvous and gloo across the veth link. One node's
worker is killed (SIGKILL) once mid-run; torchrun (--max-restarts 1) restarts the workers on both
nodes, the run resumes from its last checkpoint, and both nodes end with identical weights.

Needs root and iproute2 (`ip netns`); skipped without them, except where MINIGPT_REQUIRE_NETNS=1
(.ci/run sets it: CI runs as root and installs iproute2, so there the test must run). The two
namespaces share this machine's filesystem, which the run directory needs: every rank reads the
run's data and the newest checkpoint from --out (see README, "Several processes or machines").
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import pytest
import torch

from minigpt import ModelConfig, TrainConfig, load, train
from minigpt.checkpoint import latest_state, tensor_digest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # two torchrun agents, a restart
STEPS, EVERY, KILL_AT = 60, 10, 25  # node B's worker dies after step 25: resume at 20
MODEL = dict(block_size=16, n_embd=16, num_heads=2, n_layers=1, dropout=0.0)
TRAIN = dict(batch_size=4, eval_interval=EVERY, eval_batches=1, sample_chars=0, threads=1,
             warmup_steps=2, seed=3, max_steps=STEPS, plot_loss=False)
ARGS = ["--block-size", "16", "--n-embd", "16", "--num-heads", "2", "--n-layers", "1",
        "--dropout", "0", "--batch-size", "4", "--eval-interval", str(EVERY),
        "--eval-batches", "1", "--sample-chars", "0", "--threads", "1", "--warmup-steps", "2",
        "--seed", "3", "--max-steps", str(STEPS)]
TIMEOUT = 120  # seconds for the whole two-node run; a hang fails the test instead of blocking CI


def _ip() -> str | None:
    found = [shutil.which("ip"), *(p for p in ("/usr/sbin/ip", "/sbin/ip") if os.path.exists(p))]
    return next((p for p in found if p), None)


def _skip_or_fail(reason: str):
    if os.environ.get("MINIGPT_REQUIRE_NETNS") == "1":
        pytest.fail(f"MINIGPT_REQUIRE_NETNS=1 but {reason}")
    pytest.skip(reason)


class TwoHosts:
    """Network namespaces mgA<pid> and mgB<pid>, joined by the veth pair mgvA<pid> (10.N.M.1)
    and mgvB<pid> (10.N.M.2), `lo` up in each. Names carry the pid, so parallel runs do not
    collide."""

    def __init__(self, ip: str):
        tag = os.getpid()
        self.ip, self.ns = ip, {"A": f"mgA{tag}", "B": f"mgB{tag}"}
        self.dev = {"A": f"mgvA{tag}"[:15], "B": f"mgvB{tag}"[:15]}  # IFNAMSIZ: 15 characters
        net = f"10.{200 + tag // 250 % 50}.{tag % 250}"
        self.addr = {"A": f"{net}.1", "B": f"{net}.2"}

    def _run(self, *args: str) -> None:
        result = subprocess.run([self.ip, *args], capture_output=True, text=True, timeout=20)
        if result.returncode:
            raise OSError(f"ip {' '.join(args)}: {result.stderr.strip()}")

    def up(self) -> None:
        for node in "AB":
            self._run("netns", "add", self.ns[node])
        self._run("link", "add", self.dev["A"], "type", "veth", "peer", "name", self.dev["B"])
        for node in "AB":
            ns, dev = self.ns[node], self.dev[node]
            self._run("link", "set", dev, "netns", ns)
            self._run("-n", ns, "addr", "add", f"{self.addr[node]}/24", "dev", dev)
            self._run("-n", ns, "link", "set", dev, "up")
            self._run("-n", ns, "link", "set", "lo", "up")

    def down(self) -> None:
        # Deleting a namespace deletes its veth end, and the pair with it; the link is deleted by
        # name too in case setting up stopped before it was moved into a namespace.
        subprocess.run([self.ip, "link", "del", self.dev["A"]], capture_output=True, timeout=20)
        for node in "AB":
            subprocess.run([self.ip, "netns", "del", self.ns[node]], capture_output=True,
                           timeout=20)

    def popen(self, node: str, cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
        with open(log, "w") as out:  # the child keeps its own copy of the descriptor
            return subprocess.Popen([self.ip, "netns", "exec", self.ns[node], *cmd], env=env,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture
def hosts():
    ip = _ip()
    if os.geteuid() != 0:
        _skip_or_fail("network namespaces need root")
    if ip is None:
        _skip_or_fail("no `ip` command (Debian package iproute2)")
    h = TwoHosts(ip)
    try:
        h.up()
    except (OSError, subprocess.TimeoutExpired) as exc:
        h.down()
        _skip_or_fail(f"cannot make network namespaces here: {exc}")
    try:
        yield h
    finally:
        h.down()


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill `ip netns exec` + torchrun's agent (its own session, so its process group)."""
    if proc.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)


def _kill_workers(records: Path) -> None:
    """Kill the workers still alive: torchrun starts each in a session of its own, so killing an
    agent's group leaves them. Only pids that are still this test's workers (their environment
    names our records directory) are killed."""
    mark = f"MULTINODE_RECORDS={records}".encode()
    for worker in _read_jsonl(records / "workers.jsonl"):
        with suppress(OSError):
            if mark in Path(f"/proc/{worker['pid']}/environ").read_bytes().split(b"\0"):
                os.kill(worker["pid"], signal.SIGKILL)


def test_two_nodes_survive_a_killed_worker_and_end_identical(hosts, story_file, tmp_path):
    out, records = tmp_path / "run", tmp_path / "records"
    records.mkdir()
    port = 29400  # the namespaces are new: nothing else listens in them
    procs = {}
    try:
        for node in "AB":
            env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT / "src"),
                       OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME=hosts.dev[node],
                       # Without this, the restarted workers' gloo reads the first group's
                       # addresses, left in the store torchrun keeps across rounds, and fails
                       # with "connection refused" (seen on torch 2.13; pytorch/pytorch#135712).
                       TORCH_DISABLE_SHARE_RDZV_TCP_STORE="1",
                       MULTINODE_NODE=node, MULTINODE_RECORDS=str(records),
                       MULTINODE_KILL=f"B:{KILL_AT}")
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
                   "--nproc-per-node", "1", "--rdzv-backend", "c10d",
                   "--rdzv-endpoint", f"{hosts.addr['A']}:{port}", "--rdzv-id", f"mg{os.getpid()}",
                   # is_host: A serves the rendezvous store; torchrun would only guess that
                   # from the machine's hostname, which the namespaces share.
                   "--rdzv-conf", f"join_timeout=60,is_host={int(node == 'A')}",
                   # local-addr: the address the rank-0 node publishes for the workers' store;
                   # the hostname would resolve to this machine, outside the namespaces.
                   "--local-addr", hosts.addr[node], "--max-restarts", "1",
                   "--monitor-interval", "0.2", str(ROOT / "tests" / "multinode_worker.py"),
                   "train", "--data", story_file, "--out", str(out), *ARGS]
            procs[node] = hosts.popen(node, cmd, env, tmp_path / f"node{node}.log")

        deadline = time.monotonic() + TIMEOUT
        for proc in procs.values():
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pytest.fail(f"the two-node run took more than {TIMEOUT} s\n{_logs(tmp_path)}")
        logs = _logs(tmp_path)
        assert [procs[n].returncode for n in "AB"] == [0, 0], logs
    finally:  # the namespaces go in the fixture, after this
        for proc in procs.values():
            _kill_group(proc)
        _kill_workers(records)

    # Node B's first worker died (SIGKILL) after step KILL_AT and torchrun restarted the workers
    # on both nodes. B counts its restart; A may not (its worker was still healthy when B came back
    # and it starts the new one as attempt 0 again), which is why the ranks decide together
    # whether to resume (distributed.restarted_by_torchrun).
    killed = _read_jsonl(records / "killed.jsonl")
    assert [(k["node"], k["step"]) for k in killed] == [("B", KILL_AT)], killed
    assert "failed (exitcode: -9)" in _log(tmp_path, "B"), logs
    workers = _read_jsonl(records / "workers.jsonl")
    assert sorted(w["node"] for w in workers) == ["A", "A", "B", "B"], workers
    on_b = [w for w in workers if w["node"] == "B"]
    assert [w["attempt"] for w in on_b] == [0, 1] and on_b[0]["pid"] == killed[0]["pid"], workers
    assert len({w["pid"] for w in workers}) == 4, workers

    # The new group resumed from the newest checkpoint before the kill, not from step 0, once
    # (rank 0 logs it), and finished the run; metrics.jsonl holds every checkpoint step once.
    full = _log(tmp_path, "A") + _log(tmp_path, "B")
    resumed = [int(line.split("resuming at step ")[1].split()[0])
               for line in full.splitlines() if "resuming at step " in line]
    assert resumed == [KILL_AT // EVERY * EVERY], logs
    assert latest_state(out)["step"] == STEPS and latest_state(out)["world_size"] == 2
    steps = [r["step"] for r in _read_jsonl(out / "metrics.jsonl")]
    assert steps == list(range(EVERY, STEPS + 1, EVERY))

    # Both nodes end with identical weights: each rank's own digest at the last step, and the
    # checkpoint rank 0 wrote.
    finals = {}
    for node in "AB":
        lines = [r for p in records.glob(f"digest.{node}.rank*.jsonl") for r in _read_jsonl(p)]
        finals[node] = [r["digest"] for r in lines if r["step"] == STEPS]
    assert len(finals["A"]) == len(finals["B"]) == 1, finals
    assert finals["A"] == finals["B"], finals
    model, _, _ = load(out, "cpu")
    assert tensor_digest(model.state_dict()) == finals["A"][0]

    # And the resume was exact: the same weights as one process training without a break (a
    # resume from the wrong step, or steps replayed twice, would be far off).
    single = train(ModelConfig(**MODEL), TrainConfig(data=[story_file], **TRAIN),
                   tmp_path / "single", log=lambda *a: None)
    reference, _, _ = load(single, "cpu")
    for (name, a), b in zip(model.state_dict().items(), reference.state_dict().values()):
        # 2 ranks sum the gradient in another order than 1 process: rounding, which Adam
        # magnifies in the key bias (its true gradient is zero); the rest agrees to ~1e-7.
        assert torch.allclose(a, b, atol=1e-4), (name, (a - b).abs().max())


def _log(tmp_path: Path, node: str) -> str:
    path = tmp_path / f"node{node}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def _logs(tmp_path: Path) -> str:
    """Both nodes' output for a failure message, the end of each."""
    return "\n".join(f"--- node {n} ---\n{_log(tmp_path, n)[-6000:]}" for n in "AB")


AGREE = """
import os
from minigpt.distributed import restarted_by_torchrun, setup, teardown
os.environ["TORCHELASTIC_RESTART_COUNT"] = "1" if os.environ["RANK"] == "1" else "0"
d = setup("cpu")
print(f"rank {d.rank}: own {restarted_by_torchrun()}, together {restarted_by_torchrun(d)}", flush=True)
teardown(d)
"""


def test_one_restarted_rank_makes_every_rank_resume(tmp_path):
    """What the healthy node sees in the test above, on one host without namespaces: its workers
    come back with TORCHELASTIC_RESTART_COUNT unchanged, and only the group knows better."""
    script = tmp_path / "agree.py"
    script.write_text(AGREE)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                             "--nproc-per-node", "2", str(script)], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rank 0: own False, together True" in result.stdout, result.stdout
    assert "rank 1: own True, together True" in result.stdout, result.stdout
