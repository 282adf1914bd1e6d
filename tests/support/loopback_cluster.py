"""A Ray cluster of several nodes on this machine that no other host can reach, for tests and
benchmarks: run a command inside it.

    unshare --net python tests/support/loopback_cluster.py --nodes 2 -- finn-rtl verify ...

The whole cluster lives in a private network namespace that has only a loopback interface
(`unshare --net`, root): there Ray finds no route outwards and takes 127.0.0.1 as every node's
address, so every Ray socket is on loopback whatever it binds to. (Outside a namespace, `ray
start --node-ip-address=127.0.0.1` is turned into the machine's interface address, and the GCS
and raylets listen on all interfaces.) The head listens on 127.0.0.1:6379 (the namespace is
private: no clash), each node has `--cpus` CPUs, token authentication is on with a token made
for this cluster, and the command gets RAY_ADDRESS. `--kill-shard-after S` kills, S seconds
after the command starts, a worker process that is running an rtlsim shard on the last node (by
its pid), as a crash would; `--kill-head-after S` kills the head node instead (its GCS server and
raylet, by pid), once a shard is running. The command's exit status is the script's; the cluster is stopped
after it.
"""
from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import time

HEAD = "127.0.0.1:6379"


def ray_command() -> list[str]:
    return [sys.executable, "-m", "ray.scripts.scripts"]


def start(nodes: int, cpus: int, env: dict) -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    common = ["--num-cpus", str(cpus), "--disable-usage-stats"]
    subprocess.run([*ray_command(), "start", "--head", "--node-ip-address=127.0.0.1", "--port=6379",
                    "--include-dashboard=false", *common], check=True, env=env, capture_output=True)
    for _ in range(nodes - 1):
        subprocess.run([*ray_command(), "start", f"--address={HEAD}", *common], check=True, env=env,
                       capture_output=True)


def shard_workers_of_last_node() -> list[int]:
    """Pids of Ray worker processes running an rtlsim shard (its process title) whose raylet is the newest one."""
    def parent(pid):
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])

    pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    raylets = sorted(p for p in pids if "raylet/raylet" in _safe(_cmdline, p))
    if not raylets:
        return []
    last = raylets[-1]
    return [p for p in pids if "ray::rtlsim shard" in _safe(_cmdline, p) and _safe(parent, p) == last]


def head_processes() -> list[int]:
    """Pids of the head node's GCS server and raylet (the oldest raylet)."""
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    lines = {p: _safe(_cmdline, p) for p in pids}
    raylets = [p for p in pids if "raylet/raylet" in lines[p]]
    return [p for p in pids if "gcs_server" in lines[p].split(" ")[0]] + raylets[:1]


def _cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode(errors="replace")


def wait_for_shard_workers(run, after: float) -> list[int]:
    """After `after` seconds, wait (at most 2 minutes, while `run` runs) until a worker runs an
    rtlsim shard on the last node; their pids, or none."""
    time.sleep(after)
    deadline = time.monotonic() + 120
    while run.poll() is None and time.monotonic() < deadline:
        workers = shard_workers_of_last_node()
        if workers:
            return workers
        time.sleep(0.2)
    return []


def kill(pids: list[int], what: str) -> None:
    for pid in pids:
        os.kill(pid, 9)
        print(f"loopback_cluster: killed {what} {pid}", file=sys.stderr, flush=True)


def _safe(read, pid):
    try:
        return read(pid)
    except OSError:
        return ""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=1)
    parser.add_argument("--kill-shard-after", type=float)
    parser.add_argument("--kill-head-after", type=float)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    try:
        start(args.nodes, args.cpus, env)
        run = subprocess.Popen(command, env={**env, "RAY_ADDRESS": HEAD})
        if args.kill_shard_after is not None:
            kill(wait_for_shard_workers(run, args.kill_shard_after)[:1], "shard worker")
        if args.kill_head_after is not None:
            wait_for_shard_workers(run, args.kill_head_after)
            kill(head_processes(), "head process")
        return run.wait()
    finally:
        subprocess.run([*ray_command(), "stop", "--force"], env=env, capture_output=True)


if __name__ == "__main__":
    sys.exit(main())
