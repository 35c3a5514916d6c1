"""Explore-tab latency: slider input -> new picture, p50 and p95 on localhost.

Explore draws a slider's picture in the page when it can (the decoder in onnxruntime-web,
ui/static/explore_decode.js), else on the server (/decode). Measured side by side in one run:
  browser   headless Chromium: set the slider, time until the <img> shows the new picture
            (MutationObserver), for each model in `--models` drawn in the page and drawn by
            the server (the page's "Draw in this browser" unticked), and a bare Gradio
            reference app (one slider, one image, a handler that only returns a stored
            picture of the same size) with Gradio's defaults and outside the queue;
  client    gradio_client calls of the /decode endpoint, the app and the bare references.

    python bench/bench_explore.py [--moves 200] [--models vae-digits-2d vae-digits-16d gan-emoji-32] [--json]

The three shipped models by default: the 2-D and 16-D digit VAEs and the 32 px colour DCGAN.
`colour` is a DCGAN on emoji at 32x32 RGB trained for `--colour-seconds` first, uploaded as a
user would (a file path is uploaded too).
Target (issue 15): p95 <= 16 ms (one frame at 60 Hz) drawn in the page.

Beside a class that trains (`--trainings N`): the app with N training slots, the browser's slider
latency and the page's load time measured idle, then with N sessions training on the defaults
(the pool full; their clients run in a subprocess, as a class's browsers are not in the server's
process), in one run:

    python bench/bench_explore.py --trainings 8 --moves 100

Three loaded runs: as the app runs (runs step in turns, one per core; live frames lean: only
what changed, curves and pictures refreshed as often as a crowded run changes, pictures encoded
off the event loop), with every run stepping at once (lean frames), and as the app ran before
(all at once, every output of every frame re-sent; `ui.train_tab.LEAN_FRAMES = False`). Training
threads are at nice +10 in all three. Each loaded row also gives the whole class's training
steps/s, with nobody moving a slider and while the slider moves. Target (issue 10): loaded
slider p95 within 2x of idle.

With `--dragging M` (and `--only dragging` to skip the three runs above): M more sessions explore
a shipped VAE while the N train, and the class's training steps/s and the server's CPU seconds
spent in /decode are measured with nobody dragging, with the M dragging through the server (each
a /decode call every 0.1 s), and with the M drawing in their pages (each opened the model and
fetched its decoder; a page that draws itself sends the server nothing while it drags, which the
Chromium journey in tests/test_browser.py checks with /decode refused). Their pages' own decoding
is not simulated: on a class's laptops it runs there, and on one 2-core machine it would take the
server's cores. Target (issue 15): server CPU on decodes ~0, training steps/s unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402

from playground.explore import N_DIRECTIONS  # noqa: E402
from playground.explore import N_SLIDERS as N_LATENT  # noqa: E402
from playground.trainer import configure_threads  # noqa: E402
from ui import PAGE, build_demo  # noqa: E402

N_SLIDERS = N_LATENT + N_DIRECTIONS  # the /decode endpoint's inputs
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]

TIME_CHANGE_JS = """
async ([sel, imgSel, value]) => {
  const input = document.querySelector(sel);
  const img = () => document.querySelector(imgSel);
  const before = img() ? img().src : null;
  const done = new Promise((resolve) => {
    const obs = new MutationObserver(() => {
      if (img() && img().src !== before) { obs.disconnect(); resolve(performance.now()); }
    });
    setTimeout(() => { obs.disconnect(); resolve(NaN); }, 3000);  // a dropped update: not counted
    obs.observe(document.body, {subtree: true, attributes: true, childList: true, attributeFilter: ["src"]});
  });
  const t0 = performance.now();
  const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value").set;
  setter.call(input, String(value));
  input.dispatchEvent(new Event("input", {bubbles: true}));
  return (await done) - t0;
}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bare_demo(size: int) -> gr.Blocks:
    """The reference: the cheapest slider -> image app Gradio allows."""
    rng = np.random.default_rng(0)
    pics = [rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for _ in range(16)]
    with gr.Blocks() as demo:
        s = gr.Slider(-3, 3, value=0, step=0.01, elem_id="z0")
        img = gr.Image(format="png", type="numpy", elem_id="explore-image", value=pics[0])
        s.input(lambda v: pics[int((v + 3) * 100) % 16], s, img, api_name="decode", trigger_mode="always_last", show_progress="hidden", concurrency_limit=None)
    return demo


def bare_demo_no_queue(size: int) -> gr.Blocks:
    """The reference as the app wires its sliders: the same handler, outside Gradio's queue
    (queue=False: one HTTP request per move instead of a queued job and its event stream)."""
    rng = np.random.default_rng(0)
    pics = [rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for _ in range(16)]
    with gr.Blocks() as demo:
        s = gr.Slider(-3, 3, value=0, step=0.01, elem_id="z0")
        img = gr.Image(format="png", type="numpy", elem_id="explore-image", value=pics[0])
        s.input(lambda v: pics[int((v + 3) * 100) % 16], s, img, api_name="decode", trigger_mode="always_last", show_progress="hidden", concurrency_limit=None, queue=False)
    return demo


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def summary(xs):
    return {"p50_ms": round(pct(xs, 50), 1), "p95_ms": round(pct(xs, 95), 1), "mean_ms": round(statistics.mean(xs), 1), "n": len(xs)}


def client_latencies(url: str, moves: int, n_args: int) -> list[float]:
    c = Client(url, download_files=False, verbose=False)
    out = []
    for i in range(moves + 5):
        v = -3 + 6 * ((i * 0.37) % 1)
        args = [v] + [0.0] * (n_args - 1)
        t0 = time.perf_counter()
        c.predict(*args, api_name="/decode")
        if i >= 5:  # warm-up
            out.append((time.perf_counter() - t0) * 1000)
    return out


def browser_latencies(page, moves: int) -> list[float]:
    out = []
    for i in range(moves + 5):
        v = round(-3 + 6 * ((i * 0.37) % 1), 2)
        ms = page.evaluate(TIME_CHANGE_JS, ["#z0 input[type=range]", "#explore-image img", v])
        if i >= 5 and ms == ms:  # NaN: no new picture within 3 s
            out.append(ms)
    if len(out) < moves // 2:
        raise RuntimeError(f"only {len(out)} of {moves} slider moves produced a new picture")
    return out


def open_explore(browser, url: str, model: str, path: str | None = "browser"):
    """A new page on the Explore tab showing `model` (shipped: picked from the list; any other
    file: uploaded), once its pictures are drawn by `path` ("browser": the page, "server", or
    None: either); returns (page, seconds to load the page)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    t0 = time.perf_counter()
    page.goto(url)
    page.wait_for_selector("#train")
    load_s = time.perf_counter() - t0
    page.get_by_role("tab", name="Explore").click()
    if Path(model).parent == ROOT / "checkpoints":
        page.click("#explore-model input")
        page.get_by_role("option", name=Path(model).stem + " ", exact=False).first.click()
    else:
        page.set_input_files("#explore-upload input[type=file]", model)
    page.wait_for_selector("#explore-image img")
    want = f"[data-path={path}]" if path else ""
    page.wait_for_selector(f"#explore-path .pg-path{want}", timeout=120_000)
    time.sleep(1.0)
    return page, load_s


def colour_model(seconds: float, folder: Path) -> str:
    """A DCGAN on emoji at 32x32 RGB (the family's defaults) trained for `seconds`, as a file."""
    from playground.checkpoint import save_checkpoint
    from playground.data import load_data
    from playground.models import default_batch_size
    from playground.trainer import TrainConfig, make_trainer

    data = load_data("emoji", image_size=32)
    config = TrainConfig(batch_size=default_batch_size("gan", data.sample_shape), seed=0)
    t = make_trainer("gan", data, None, config, data_args={"spec": "emoji", "image_size": 32})
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t.step()
    return str(save_checkpoint(folder / "gan-emoji-32.safetensors", t, optimizer=False))


class Class:
    """N sessions training on the app's defaults until stop(), driven from another process (as a
    class's browsers are: their clients do not share the server's interpreter lock)."""

    def __init__(self, url: str, n: int, pool):
        self.pool = pool
        self.proc = subprocess.Popen([sys.executable, __file__, "--class-of", str(n), "--url", url],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
        if self.proc.stdout.readline().strip() != "training":
            raise RuntimeError("the class's clients did not start training")
        time.sleep(2.0)  # past the first frames: steady training

    def steps(self) -> int:
        return sum(r.trainer.step_count for r in self.pool.runners())

    def stop(self) -> None:
        self.proc.stdin.close()  # the clients press Stop and leave
        self.proc.wait(60)
        time.sleep(3.0)


def class_clients(url: str, n: int) -> None:
    """The class's side (a subprocess): n sessions press Train, then Stop once stdin closes."""
    clients = [Client(url, download_files=False, verbose=False) for _ in range(n)]
    jobs = [c.submit(upload=None, api_name="/train") for c in clients]
    end = time.time() + 60
    while time.time() < end and sum(len(j.outputs()) >= 2 for j in jobs) < n:
        time.sleep(0.1)
    print("training", flush=True)
    sys.stdin.read()
    for c in clients:
        c.predict(api_name="/stop")
    for c in clients:
        c.close()


def beside_trainings(args) -> None:
    from playwright.sync_api import sync_playwright

    import playground.runs as runs
    import ui.train_tab as train_tab

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    configure_threads(max(1, cores // args.trainings))  # as app.py does
    app = build_demo(max_trainings=args.trainings)
    port = free_port()
    app.queue(default_concurrency_limit=None).launch(server_port=port, prevent_thread_lock=True, quiet=True, **PAGE)
    url = f"http://127.0.0.1:{port}/"
    results = {"trainings": args.trainings, "model": args.model}
    if args.dragging:
        results["dragging"] = dragging(app, url, args)
    if args.only == "dragging":
        app.close()
        return report_dragging(results, args)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=ARGS)
        page, load_s = open_explore(b, url, args.model)
        results["idle"] = {**summary(browser_latencies(page, args.moves)), "page_load_s": round(load_s, 2)}
        page.close()
        # (key, runs step in turns (one per core), live frames as lean as the app makes them)
        for key, turns, lean in (("loaded", True, True), ("loaded_all_at_once", False, True), ("before", False, False)):
            saved = app.pool.turns, train_tab.LEAN_FRAMES
            app.pool.turns = saved[0] if turns else runs.Turns(args.trainings)
            train_tab.LEAN_FRAMES = lean
            try:
                cls = Class(url, args.trainings, app.pool)
                page, load_s = open_explore(b, url, args.model)
                t0, s0 = time.perf_counter(), cls.steps()
                time.sleep(5.0)
                alone = (cls.steps() - s0) / (time.perf_counter() - t0)  # nobody moving a slider
                t0, s0 = time.perf_counter(), cls.steps()
                ms = browser_latencies(page, args.moves)
                rate = (cls.steps() - s0) / (time.perf_counter() - t0)
                results[key] = {**summary(ms), "page_load_s": round(load_s, 2), "training_steps_per_s": round(rate),
                               "training_steps_per_s_no_slider": round(alone)}  # fmt: skip
                page.close()
                cls.stop()
            finally:
                app.pool.turns, train_tab.LEAN_FRAMES = saved
        b.close()
    app.close()
    if args.json:
        print(json.dumps(results))
        return
    idle = results["idle"]
    print(f"model {Path(args.model).name}, {args.trainings} trainings, {args.moves} moves each (browser)")
    for key in ("idle", "loaded", "loaded_all_at_once", "before"):
        r = results[key]
        extra = (f"  training {r['training_steps_per_s_no_slider']:,} steps/s in all, {r['training_steps_per_s']:,} while the slider moves"
                 if "training_steps_per_s" in r else "")  # fmt: skip
        print(f"{key:22} p50 {r['p50_ms']:7.1f} ms  p95 {r['p95_ms']:7.1f} ms  ({r['p95_ms'] / idle['p95_ms']:.2f}x idle p95)  page load {r['page_load_s']:.2f} s{extra}")
    if args.dragging:
        report_dragging(results, args)


DRAG_SECONDS = 15.0  # each dragging row's measuring window
DRAG_EVERY = 0.1  # seconds between two /decode calls of a session dragging through the server


def decode_meter(app) -> dict:
    """Count the app's /decode calls and the CPU seconds their handler takes (thread time)."""
    import functools

    block_fn = next(f for f in app.fns.values() if f.api_name == "decode")
    inner, meter = block_fn.fn, {"calls": 0, "cpu_s": 0.0}

    @functools.wraps(inner)
    def timed(*a, **k):
        t0 = time.thread_time()
        try:
            return inner(*a, **k)
        finally:
            meter["calls"] += 1
            meter["cpu_s"] += time.thread_time() - t0

    block_fn.fn = timed
    return meter


def dragging(app, url: str, args) -> dict:
    """The class trains; then args.dragging more sessions explore a shipped VAE, dragging
    through the server, then drawing in their pages (see the module docstring)."""
    meter = decode_meter(app)
    cls = Class(url, args.trainings, app.pool)
    rows = {}
    try:
        for how in (None, "server", "page"):
            proc = None
            if how:
                proc = subprocess.Popen([sys.executable, __file__, "--drag-of", str(args.dragging), "--how", how, "--url", url],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
                if proc.stdout.readline().strip() != "dragging":
                    raise RuntimeError("the dragging sessions did not start")
                time.sleep(2.0)
            calls, cpu = meter["calls"], meter["cpu_s"]
            t0, s0 = time.perf_counter(), cls.steps()
            time.sleep(DRAG_SECONDS)
            dt = time.perf_counter() - t0
            rows[how or "nobody"] = {"training_steps_per_s": round((cls.steps() - s0) / dt, 1), "decode_calls_per_s": round((meter["calls"] - calls) / dt, 1),
                                     "decode_cpu_s_per_s": round((meter["cpu_s"] - cpu) / dt, 4)}  # fmt: skip
            if proc:
                proc.stdin.close()
                proc.wait(120)
    finally:
        cls.stop()
    return rows


def drag_clients(url: str, m: int, how: str) -> None:
    """The dragging sessions' side (a subprocess): m sessions open the shipped 16-D VAE; "server":
    each then calls /decode every DRAG_EVERY seconds with new slider values until stdin closes;
    "page": each fetches the decoder its page would run, then sends nothing."""
    import random
    import threading
    import urllib.request

    clients = [Client(url, download_files=False, verbose=False) for _ in range(m)]
    for c in clients:
        c.predict(SHIPPED["vae-digits-16d"], api_name="/explore_pick")
    if how == "page":
        for c in clients:
            plan = c.predict(api_name="/explore_decoder")[0]  # (plan, latent map, its numbers)
            with urllib.request.urlopen(url + plan["decoder"]) as r:
                r.read()
    stop = threading.Event()

    def drag(c, seed):
        rng = random.Random(seed)
        while not stop.is_set():
            c.predict(*[round(rng.uniform(-3, 3), 2) for _ in range(N_SLIDERS)], api_name="/decode")
            time.sleep(DRAG_EVERY)

    threads = [threading.Thread(target=drag, args=(c, i), daemon=True) for i, c in enumerate(clients)] if how == "server" else []
    for t in threads:
        t.start()
    print("dragging", flush=True)
    sys.stdin.read()
    stop.set()
    for t in threads:
        t.join(30)
    for c in clients:
        c.close()


def report_dragging(results: dict, args) -> None:
    rows = results["dragging"]
    if args.json:
        print(json.dumps(results))
        return
    base = rows["nobody"]["training_steps_per_s"]
    print(f"{args.trainings} sessions training, {args.dragging} more exploring the 16-D digit VAE ({DRAG_SECONDS:.0f} s each row)")
    for key, what in (("nobody", "nobody dragging"), ("server", "dragging, drawn by the server"), ("page", "dragging, drawn in their pages")):
        r = rows[key]
        print(f"  {what:32} training {r['training_steps_per_s']:7.1f} steps/s ({r['training_steps_per_s'] / base:.2f}x)   "
              f"/decode {r['decode_calls_per_s']:6.1f} calls/s, {r['decode_cpu_s_per_s']:.3f} CPU s/s")  # fmt: skip


SHIPPED = {name: str(ROOT / "checkpoints" / f"{name}.safetensors") for name in ("vae-digits-2d", "vae-digits-16d", "gan-emoji-32")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--moves", type=int, default=200)
    p.add_argument("--models", nargs="*", default=["vae-digits-2d", "vae-digits-16d", "gan-emoji-32"],
                   help="shipped checkpoints by name, checkpoint files, or 'colour' (see above)")  # fmt: skip
    p.add_argument("--colour-seconds", type=float, default=30.0)
    p.add_argument("--trainings", type=int, default=0, help="measure beside this many trainings (see above)")
    p.add_argument("--dragging", type=int, default=0, help="with --trainings: this many sessions drag sliders (see above)")
    p.add_argument("--only", choices=["dragging"], help="with --trainings and --dragging: only the dragging rows")
    p.add_argument("--json", action="store_true")
    p.add_argument("--class-of", type=int, default=0, help=argparse.SUPPRESS)  # the class's clients (a subprocess)
    p.add_argument("--drag-of", type=int, default=0, help=argparse.SUPPRESS)  # the dragging sessions (a subprocess)
    p.add_argument("--how", choices=["server", "page"], help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.class_of:
        return class_clients(args.url, args.class_of)
    if args.drag_of:
        return drag_clients(args.url, args.drag_of, args.how)
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="bench-explore-"))
    models = [SHIPPED.get(m, m) for m in args.models]
    if "colour" in models:
        models[models.index("colour")] = colour_model(args.colour_seconds, folder)
    args.model = models[0]
    if args.trainings:
        return beside_trainings(args)
    configure_threads()

    app = build_demo()
    app_port, bare_port = free_port(), free_port()
    app.queue(default_concurrency_limit=None).launch(server_port=app_port, prevent_thread_lock=True, quiet=True, **PAGE)
    app_url = f"http://127.0.0.1:{app_port}/"
    # the picture size the app returns for the first model, so the reference sends as many bytes
    c = Client(app_url, download_files=False, verbose=False)
    first = c.predict(handle_file(models[0]), api_name="/explore_upload")[1]
    from PIL import Image

    size = Image.open(first if isinstance(first, str) else first["path"]).size[0]
    bare = bare_demo(size)
    bare.queue().launch(server_port=bare_port, prevent_thread_lock=True, quiet=True)
    bare_url = f"http://127.0.0.1:{bare_port}/"
    bare_nq, bare_nq_port = bare_demo_no_queue(size), free_port()
    bare_nq.queue().launch(server_port=bare_nq_port, prevent_thread_lock=True, quiet=True)
    bare_nq_url = f"http://127.0.0.1:{bare_nq_port}/"

    results = {"models": [Path(m).name for m in models], "bare_picture_px": size, "browser": {}}
    results["client"] = {
        "app": summary(client_latencies_pick(app_url, models[0], args.moves)),
        "bare": summary(client_latencies(bare_url, args.moves, 1)),
        "bare_no_queue": summary(client_latencies(bare_nq_url, args.moves, 1)),
    }

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, args=ARGS)
        for model in models:  # one page at a time: an open page keeps its event stream and timers going
            page, _ = open_explore(b, app_url, model, "browser")
            in_page = browser_latencies(page, args.moves)
            decode_ms = page.evaluate("window.pgExplore.state.last.ms")
            page.uncheck("#explore-in-browser input")
            page.wait_for_selector("#explore-path .pg-path[data-path=server]")
            on_server = browser_latencies(page, args.moves)
            results["browser"][Path(model).name] = {"page": summary(in_page), "server": summary(on_server), "last_decode_ms": round(decode_ms, 2)}
            page.close()
        for key, url in (("bare", bare_url), ("bare_no_queue", bare_nq_url)):
            p2 = b.new_page()
            p2.goto(url)
            p2.wait_for_selector("#explore-image img")
            results["browser"][key] = summary(browser_latencies(p2, args.moves))
            p2.close()
        b.close()
    app.close()
    bare.close()
    bare_nq.close()
    shutil.rmtree(folder, ignore_errors=True)

    if args.json:
        print(json.dumps(results))
        return
    print(f"{args.moves} moves each; bare Gradio sends a {size} px picture")
    br = results["browser"]
    for name in results["models"]:
        r = br[name]
        print(f"browser  {name:28} in the page p50 {r['page']['p50_ms']:6.1f} ms  p95 {r['page']['p95_ms']:6.1f} ms   "
              f"| by the server p50 {r['server']['p50_ms']:6.1f} ms  p95 {r['server']['p95_ms']:6.1f} ms   "
              f"| page/server p95 {r['page']['p95_ms'] / r['server']['p95_ms']:.2f}")  # fmt: skip
    for key in ("bare", "bare_no_queue"):
        print(f"browser  {key:28} p50 {br[key]['p50_ms']:6.1f} ms  p95 {br[key]['p95_ms']:6.1f} ms")
    a, r, nq = results["client"]["app"], results["client"]["bare"], results["client"]["bare_no_queue"]
    print(f"client   /decode ({results['models'][0]}) p50 {a['p50_ms']:6.1f} ms  p95 {a['p95_ms']:6.1f} ms   "
          f"| bare p50 {r['p50_ms']:6.1f}  p95 {r['p95_ms']:6.1f}   | bare, queue=False p50 {nq['p50_ms']:6.1f}  p95 {nq['p95_ms']:6.1f}")  # fmt: skip


def client_latencies_pick(url: str, model: str, moves: int) -> list[float]:
    """Client latencies on the app, in a session that has opened the model first."""
    c = Client(url, download_files=False, verbose=False)
    c.predict(handle_file(model), api_name="/explore_upload")
    out = []
    for i in range(moves + 5):
        v = -3 + 6 * ((i * 0.37) % 1)
        t0 = time.perf_counter()
        c.predict(*([v] + [0.0] * (N_SLIDERS - 1)), api_name="/decode")
        if i >= 5:
            out.append((time.perf_counter() - t0) * 1000)
    return out


if __name__ == "__main__":
    main()
