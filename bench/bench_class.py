"""A class on one server, through gradio_client: everyone trains at once, and memory over bursts.

Starts the app (`python app.py`, its defaults unless `--max-trainings`) in a process of its own.

Class mode (the default): for each N in `--students` (1, 2, 8, 30), N gradio_client sessions
press Train on the defaults (a GAN on ring8) within a second, train `--train` seconds, then
press Stop and close their tabs. Reported per N: time from pressing Train to the student's first
picture of a run that has stepped (p50 / p95 / max; as the clients saw it, and as the server
drew it, from the trace the app writes to $PLAYGROUND_TRACE: the difference is the time
Gradio takes to deliver it), steps/s per student (its steps over the time
from its first picture to Stop: min / median / max, and max/min as the fairness), the whole
class's steps/s (every student's steps over the round's wall time), how many students started
at all, and the server's RSS at the peak. The ratio that matters: the class's steps/s at N = 30
over one student's alone, on the same server in the same run.

    python bench/bench_class.py [--students 1 2 8 30] [--train 30] [--batching both] [--json]

Each class size runs twice by default, on two servers one after the other: with every run
stepping on its own (the app's default), then with same-shaped runs stepping together as one
batched model (`app.py --batching`, playground/cohort.py). Targets (issue 13): every student's
first picture within 5 s at N = 30; aggregate steps/s at N = 30 >= 1.0x the single student's
alone, and >= 1.5x with batching.

Memory mode (`--bursts K`): K bursts of `--sessions` sessions pressing Train, training
`--train` s, then Stop and a closed tab each; the server's RSS before, at its peak and
`--settle` s after everyone left, and its CPU over that settle window (near zero when nothing
trains on). Target (issue 10): the RSS after each burst comes back to a plateau instead of
growing burst after burst (before the fix: 644 -> 1,093 -> 1,173 -> 1,266 MB with
--max-trainings 8), and the server is idle once the class has gone.

    python bench/bench_class.py --bursts 3 --sessions 30 --max-trainings 8 --train 15

Soak mode (`--soak SECONDS`, issue 13): `--sessions` students for that long, each in a loop of
its own: open the page, press Train on its own seed, move the live lr slider, open its model in
Explore and drag a latent slider, save a checkpoint, Stop; then either leave (a closed tab) and
come back as a new session a few seconds later, or train again. Reported: calls made, server
errors (a call that failed, and tracebacks in the server's log), sessions that saw another's
model (a checkpoint saved with someone else's seed, or in someone else's folder), and the RSS
at start, at its peak and `--settle` s after everyone left. Targets: 0 errors, 0 leaks, the RSS
back within 10 % of its start.

    python bench/bench_class.py --soak 600 --sessions 30

A closed tab's session closes a minute after the page went away (`ui.CLOSE_AFTER`, in case it
comes back): `--settle` (100 s) waits past that, and past the trim that follows (at most every
`playground.session.TRIM_SPACING`, 15 s), before the RSS after.

`--app PATH` serves another checkout's app.py (an older commit, for a side-by-side figure).
The clients run at the lowest CPU priority, so that on 2 cores they take from the server only
what it leaves (a real class's browsers are on other machines).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the soak reads the checkpoints it saves (playground.checkpoint)
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import httpx  # noqa: E402
from gradio_client import Client  # noqa: E402

from playground.explore import N_DIRECTIONS, N_SLIDERS  # noqa: E402


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


def soak(url: str, pid: int, log: Path, sessions: int, seconds: float, settle_s: float) -> dict:
    """The soak (see the module's docstring)."""
    import random

    from playground.checkpoint import read_checkpoint

    start = rss_mb(pid)
    peak = [start]
    counts = {"calls": 0, "errors": 0, "leaks": 0, "trainings": 0, "saves": 0, "returns": 0}
    problems: list[str] = []
    lock = threading.Lock()
    end = time.time() + seconds

    def count(key, n=1):
        with lock:
            counts[key] += n

    def call(c, *args, **kwargs):
        count("calls")
        try:
            return c.predict(*args, **kwargs)
        except Exception as e:  # every failure counts, whatever it is
            count("errors")
            with lock:
                problems.append(f"{kwargs.get('api_name')}: {type(e).__name__}: {str(e)[:120]}")
            return None

    def student(i: int):
        rng = random.Random(i)
        seed = 1000 + i  # this student's own: a checkpoint with another seed is someone else's
        c = Client(url, download_files=False, verbose=False)
        call(c, api_name="/stop")  # the page is open
        while time.time() < end:
            count("trainings")
            job = c.submit(upload=None, seed=seed, api_name="/train")
            time.sleep(rng.uniform(4, 12))
            call(c, rng.choice([1e-4, 2e-4, 5e-4]), api_name="/set_lr")
            time.sleep(rng.uniform(1, 4))
            if call(c, "__session__", api_name="/explore_pick") is not None:
                for _ in range(5):
                    call(c, *[rng.uniform(-2, 2) for _ in range(2)], *([0.0] * (N_SLIDERS + N_DIRECTIONS - 2)), api_name="/decode")
            saved = call(c, f"soak-{i}", False, api_name="/save")
            if saved is not None:
                count("saves")
                path = saved[0]["path"] if isinstance(saved[0], dict) else saved[0]
                meta, _ = read_checkpoint(path)
                if meta["train_config"]["seed"] != seed or f"soak-{i}" not in str(path):
                    count("leaks")
            call(c, api_name="/stop")
            deadline = time.time() + 15
            while not job.done() and time.time() < deadline:
                time.sleep(0.1)
            if job.done() and job.exception() is not None:
                count("errors")
                with lock:
                    problems.append(f"/train: {type(job.exception()).__name__}: {str(job.exception())[:120]}")
            if rng.random() < 0.5 and time.time() < end:  # leave, and come back as a new session
                close_tab(c)
                time.sleep(rng.uniform(2, 8))
                c = Client(url, download_files=False, verbose=False)
                call(c, api_name="/stop")
                count("returns")
        close_tab(c)

    def watch():
        while time.time() < end + 30:
            peak[0] = max(peak[0], rss_mb(pid))
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True).start()
    threads = [threading.Thread(target=student, args=(i,), daemon=True) for i in range(sessions)]
    for t in threads:
        t.start()
        time.sleep(0.1)
    for t in threads:
        t.join()
    time.sleep(settle_s)
    after = rss_mb(pid)
    tracebacks = log.read_text(errors="replace").count("Traceback") if log.exists() else None
    return {**counts, "server_tracebacks": tracebacks, "rss_start_mb": round(start), "rss_peak_mb": round(peak[0]),
            "rss_after_mb": round(after), "rss_after_over_start": round(after / start, 3), "problems": problems[:10]}  # fmt: skip


def step_of(status) -> int | None:
    if not isinstance(status, str) or "step **" not in status:
        return None
    return int(status.split("step **")[1].split("**")[0].replace(",", ""))


def is_picture(value) -> bool:
    return isinstance(value, (str, dict)) and not (isinstance(value, dict) and value.get("__type__") == "update")


def class_round(url: str, pid: int, n: int, train_s: float) -> dict:
    """N students press Train together; the figures of the round (see the module's docstring)."""
    clients = [Client(url, download_files=False, verbose=False) for _ in range(n)]
    for c in clients:  # each student's page is open (a page's load events make its session), as in class
        c.predict(api_name="/stop")
    peak = [rss_mb(pid)]
    first: dict[int, float] = {}
    finished = threading.Event()

    def watch(t0, jobs):  # the first frame of each stream showing a run that has stepped, with its picture
        while not finished.is_set():
            now = time.perf_counter()
            for i, job in enumerate(jobs):
                if i not in first and any(is_picture(o[1]) and (step_of(o[0]) or 0) > 0 for o in job.outputs()):
                    first[i] = now - t0
            peak[0] = max(peak[0], rss_mb(pid))
            time.sleep(0.05)

    skip = trace_lines()
    t0 = time.perf_counter()
    jobs = [c.submit(upload=None, api_name="/train") for c in clients]
    threading.Thread(target=watch, args=(t0, jobs), daemon=True).start()
    time.sleep(train_s)
    for c in clients:
        c.predict(api_name="/stop")
    wall = time.perf_counter() - t0
    for job in jobs:
        end = time.time() + 30
        while not job.done() and time.time() < end:
            time.sleep(0.05)
    finished.set()
    steps = []
    for job in jobs:
        seen = [step_of(o[0]) for o in job.outputs()]
        steps.append(max([s for s in seen if s is not None], default=0))
    for c in clients:
        close_tab(c)
    rates = [steps[i] / (wall - first[i]) for i in range(n) if i in first and wall > first[i]]
    def pcts(xs):
        xs = sorted(xs)
        at = lambda q: round(xs[min(len(xs) - 1, int(q * len(xs)))], 2) if xs else None  # noqa: E731
        return {"p50": at(0.5), "p95": at(0.95), "max": at(1.0)}

    sent = server_first_pictures(skip)
    return {
        "students": n, "started": len(first), "first_picture_s": pcts(first.values()),
        "first_picture_sent_s": {**pcts(sent), "runs": len(sent)},
        "steps_per_s_per_student": {"min": round(min(rates), 1), "median": round(statistics.median(rates), 1),
                                    "max": round(max(rates), 1)} if rates else None,
        "fairness_max_over_min": round(max(rates) / min(rates), 2) if rates and min(rates) > 0 else None,
        "aggregate_steps_per_s": round(sum(steps) / wall, 1), "peak_rss_mb": round(peak[0]),
    }  # fmt: skip


TRACE = Path(tempfile.gettempdir()) / f"bench-class-{os.getpid()}.jsonl"  # the server's own times


def server_first_pictures(skip: int) -> list[float]:
    """The seconds from Train to each run's first picture as the server saw them (ui/streaming
    traces them), after the first `skip` lines of the trace."""
    if not TRACE.exists():
        return []
    lines = TRACE.read_text().splitlines()[skip:]
    return sorted(json.loads(x)["seconds"] for x in lines if '"first_picture"' in x)


def trace_lines() -> int:
    return len(TRACE.read_text().splitlines()) if TRACE.exists() else 0


LOG = Path(tempfile.gettempdir()) / f"bench-class-{os.getpid()}.log"  # the server's output


def serve(app_dir: str, max_trainings: int | None, batching: bool = False) -> tuple[subprocess.Popen, str]:
    port = free_port()
    extra = (["--max-trainings", str(max_trainings)] if max_trainings else []) + (["--batching"] if batching else [])
    TRACE.unlink(missing_ok=True)
    log = LOG.open("a")
    server = subprocess.Popen([sys.executable, "app.py", "--port", str(port), *extra], cwd=app_dir,
                              env={**os.environ, "PLAYGROUND_TRACE": str(TRACE)},
                              stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    end = time.time() + 120
    while time.time() < end:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    time.sleep(2.0)
    return server, url


def end(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.terminate()
        server.wait(10)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--students", nargs="*", type=int, default=[1, 2, 8, 30], help="class mode: the class sizes, one round each")
    p.add_argument("--bursts", type=int, default=0, help="memory mode: this many bursts (0: class mode)")
    p.add_argument("--soak", type=float, default=0, help="soak mode: this many seconds (0: another mode)")
    p.add_argument("--sessions", type=int, default=30, help="memory and soak modes: sessions per burst, students in the soak")
    p.add_argument("--max-trainings", type=int, default=None, help="the app's --max-trainings (default: the app's own)")
    p.add_argument("--train", type=float, default=30.0, help="seconds each round or burst trains")
    p.add_argument("--settle", type=float, default=100.0,
                   help="memory and soak modes: seconds after the class left (a closed tab's session closes 60 s on: ui.CLOSE_AFTER)")
    p.add_argument("--app", default=str(ROOT), help="the checkout whose app.py to serve")
    p.add_argument("--json", action="store_true")
    p.add_argument("--batching", choices=("on", "off", "both"), default="both",
                   help="class mode: serve with same-shaped runs batched (app.py --batching), each alone (the default), or both, one after the other")
    args = p.parse_args()
    if args.soak or args.bursts:
        with contextlib.ExitStack() as servers:
            server, url = serve(args.app, args.max_trainings)
            servers.callback(end, server)
            os.nice(19)  # the clients (this process, not the server it started) take only what the server leaves
            if args.soak:
                print(json.dumps(soak(url, server.pid, LOG, args.sessions, args.soak, args.settle), indent=None if args.json else 1))
                return
            rows = [burst(url, server.pid, args.sessions, args.train, args.settle) for _ in range(args.bursts)]
        if args.json:
            print(json.dumps({"app": args.app, "max_trainings": args.max_trainings, "train_s": args.train, "bursts": rows}))
            return
        print(f"{args.app}: {args.bursts} bursts of {args.sessions} sessions, --max-trainings {args.max_trainings}")
        for i, r in enumerate(rows, 1):
            print(f"burst {i}: RSS before {r['before_mb']:,} MB, peak {r['peak_mb']:,} MB, after {r['after_mb']:,} MB; "
                  f"{r['sessions_that_trained']} sessions streamed; server CPU after they left {r['server_cpu_after_pct']} %")  # fmt: skip
        return
    rows = []
    # every server starts before the clients lower this process's priority (a child inherits it);
    # the one not being measured sits idle
    with contextlib.ExitStack() as running:
        servers = []
        for b in {"on": [True], "off": [False], "both": [False, True]}[args.batching]:
            servers.append((b, *serve(args.app, args.max_trainings, b)))
            running.callback(end, servers[-1][1])
        os.nice(19)
        for batching, server, url in servers:
            for n in args.students:
                rows.append({"batching": batching, **class_round(url, server.pid, n, args.train)})
                if not args.json:
                    print(json.dumps(rows[-1]), flush=True)
                time.sleep(5.0)  # the last round's runs end and its sessions go
            end(server)  # the next server is measured alone
    if args.json:
        print(json.dumps({"app": args.app, "max_trainings": args.max_trainings, "train_s": args.train, "rounds": rows}))
        return
    # the reference: one student alone, stepping on its own (without batching, where measured)
    alone = next((r["aggregate_steps_per_s"] for r in sorted(rows, key=lambda r: r["batching"]) if r["students"] == 1), None)
    for r in rows:
        ratio = f", {r['aggregate_steps_per_s'] / alone:.2f}x one student alone" if alone else ""
        fp, sent = r["first_picture_s"], r["first_picture_sent_s"]
        print(f"{'batched' if r['batching'] else 'alone'} N={r['students']}: {r['started']} started; first picture p50 {fp['p50']} / p95 {fp['p95']} / max {fp['max']} s "
              f"as the clients saw it, {sent['p50']} / {sent['p95']} / {sent['max']} s as the server sent it; "
              f"per student {r['steps_per_s_per_student']} "
              f"steps/s; class {r['aggregate_steps_per_s']} steps/s{ratio}; peak RSS {r['peak_rss_mb']:,} MB")  # fmt: skip

if __name__ == "__main__":
    main()
