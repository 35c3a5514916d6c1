"""Training speed through the app vs the command line, side by side in one run.

Starts `python app.py` on a free port, trains the default GAN on ring8 (and a VAE on digits)
through gradio_client for a few seconds, then the same configuration through
`python -m playground train`, alternating rounds so that machine noise hits both alike. Reports
steps per second of training time for each and the ratio app / CLI (target >= 0.9).

    python bench/bench_app.py [--seconds 8] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from gradio_client import Client

ROOT = Path(__file__).resolve().parent.parent
CASES = {
    "gan-ring8": (dict(upload=None), ["--model", "gan", "--data", "ring8"]),
    "vae-digits": (dict(upload=None, family="vae", data="digits", arch="mlp", likelihood="bernoulli", latent_dim=20, hidden=400, lr=1e-3), ["--model", "vae", "--data", "digits"]),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_status(text: str) -> tuple[int, float]:
    step = int(re.search(r"step \*\*([\d,]+)\*\*", text).group(1).replace(",", ""))
    secs = float(re.search(r"([\d.]+) s", text).group(1))
    return step, secs


def app_rate(url: str, kwargs: dict, seconds: float) -> float:
    """Steps per second of training time, from the app's own status line."""
    c = Client(url, download_files=False, verbose=False)
    job = c.submit(**kwargs, api_name="/train")
    while len(job.outputs()) < 2:
        time.sleep(0.05)
    s0, t0 = parse_status(job.outputs()[-1][0])
    time.sleep(seconds)
    s1, t1 = parse_status(job.outputs()[-1][0])
    c.predict(api_name="/stop")
    while not job.done():
        time.sleep(0.05)
    c.predict(api_name="/reset")
    return (s1 - s0) / (t1 - t0)


def cli_rate(args: list[str], seconds: float, out: str) -> float:
    cmd = [sys.executable, "-m", "playground", "train", *args, "--seconds", str(seconds), "--out", out]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    r = json.loads(res.stdout.strip().splitlines()[-1])
    return r["steps"] / r["seconds"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", default="runs/bench_app")
    args = p.parse_args()

    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    server = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(120):
            try:
                Client(url, download_files=False, verbose=False)
                break
            except Exception:
                time.sleep(0.5)
        results = {}
        for name, (app_kwargs, cli_args) in CASES.items():
            app, cli = [], []
            for _ in range(args.rounds):
                app.append(app_rate(url, app_kwargs, args.seconds))
                cli.append(cli_rate(cli_args, args.seconds, args.out))
            results[name] = {
                "app_steps_per_sec": statistics.median(app),
                "cli_steps_per_sec": statistics.median(cli),
                "ratio": statistics.median(app) / statistics.median(cli),
                "app_rounds": [round(x, 1) for x in app],
                "cli_rounds": [round(x, 1) for x in cli],
            }
    finally:
        server.terminate()
        server.wait(10)
    if args.json:
        print(json.dumps(results))
        return
    print(f"{'case':12} {'app steps/s':>12} {'CLI steps/s':>12} {'ratio':>6}   rounds (app | CLI)")
    for name, r in results.items():
        print(f"{name:12} {r['app_steps_per_sec']:12.1f} {r['cli_steps_per_sec']:12.1f} {r['ratio']:6.2f}   {r['app_rounds']} | {r['cli_rounds']}")


if __name__ == "__main__":
    main()
