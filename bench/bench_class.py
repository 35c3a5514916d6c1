"""A class on one server: the app's memory over bursts of sessions that train and leave.

Starts the app (`python app.py --max-trainings N`) in a process of its own and sends it bursts
of `--sessions` gradio_client sessions, one each, pressing Train on the defaults within a few
seconds. After `--train` seconds every session presses Stop and closes its tab (its heartbeat
stream drops, as a browser's does); the server's RSS is read before the burst, at its peak and
`--settle` seconds after everyone left. Also counted after each burst: training threads still
alive in the server is not visible from outside, so the server's CPU time over the settle
window stands for it (near zero when nothing trains on).

    python bench/bench_class.py [--bursts 3] [--sessions 30] [--max-trainings 8] [--json]

Target (issue 10): after each burst the RSS comes back to a plateau instead of growing burst
after burst (before the fix: 644 -> 1,093 -> 1,173 -> 1,266 MB with --max-trainings 8), and
the server is idle once the class has gone. `--app PATH` measures another checkout's app.py
(an older commit, for the side-by-side figure).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import httpx  # noqa: E402
from gradio_client import Client  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def close_tab(client: Client) -> None:
    """Drop a heartbeat stream of the session, as a closing browser tab does."""
    with httpx.stream("GET", client.heartbeat_url.format(session_hash=client.session_hash), timeout=10) as r:
        next(r.iter_lines())
    client.close()


def burst(url: str, pid: int, sessions: int, train_s: float, settle_s: float) -> dict:
    before = rss_mb(pid)
    peak = [before]
    done = threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb(pid))
            time.sleep(0.2)

    threading.Thread(target=watch, daemon=True).start()
    clients = [Client(url, download_files=False, verbose=False) for _ in range(sessions)]
    jobs = [c.submit(upload=None, api_name="/train") for c in clients]
    time.sleep(train_s)
    trained = sum(1 for j in jobs if j.outputs())
    for c in clients:
        c.predict(api_name="/stop")
    for c in clients:
        close_tab(c)
    cpu0, t0 = cpu_s(pid), time.time()
    time.sleep(settle_s)
    busy = (cpu_s(pid) - cpu0) / (time.time() - t0)
    done.set()
    return {"before_mb": round(before), "peak_mb": round(peak[0]), "after_mb": round(rss_mb(pid)),
            "sessions_that_trained": trained, "server_cpu_after_pct": round(100 * busy)}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bursts", type=int, default=3)
    p.add_argument("--sessions", type=int, default=30)
    p.add_argument("--max-trainings", type=int, default=8)
    p.add_argument("--train", type=float, default=15.0, help="seconds each burst trains")
    p.add_argument("--settle", type=float, default=20.0, help="seconds after the class left")
    p.add_argument("--app", default=str(ROOT), help="the checkout whose app.py to serve")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port), "--max-trainings", str(args.max_trainings)],
        cwd=args.app, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        end = time.time() + 120
        while time.time() < end:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        time.sleep(2.0)
        rows = [burst(url, server.pid, args.sessions, args.train, args.settle) for _ in range(args.bursts)]
    finally:
        server.terminate()
        server.wait(10)
    result = {"app": args.app, "sessions": args.sessions, "max_trainings": args.max_trainings, "bursts": rows}
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.app}: {args.bursts} bursts of {args.sessions} sessions, --max-trainings {args.max_trainings}")
    for i, r in enumerate(rows, 1):
        print(f"burst {i}: RSS before {r['before_mb']:,} MB, peak {r['peak_mb']:,} MB, after {r['after_mb']:,} MB; "
              f"{r['sessions_that_trained']} sessions streamed; server CPU after they left {r['server_cpu_after_pct']} %")  # fmt: skip


if __name__ == "__main__":
    main()
