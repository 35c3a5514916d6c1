"""Start the Generative Models Playground: `python app.py` (see --help)."""

from __future__ import annotations

import argparse
import atexit
import ctypes
import ctypes.util
import os
import tempfile
import threading

# Every thread shares 2 malloc arenas instead of up to 8 per core (glibc's M_ARENA_MAX, -8), set
# before any thread starts: training threads each took an arena of their own, and glibc kept
# the memory sessions freed in them (bench/README.md, bench_class: the growth per class halved).
try:
    ctypes.CDLL(ctypes.util.find_library("c")).mallopt(-8, 2)
except (OSError, AttributeError, TypeError):  # not glibc (macOS, Windows, musl)
    pass

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no internet here, and no tracking
# uploads go to a folder of the playground's own, so that start-up may prune what a run before
# this one left there (playground.files)
os.environ.setdefault("GRADIO_TEMP_DIR", os.path.join(tempfile.gettempdir(), "playground-gradio"))
STALE_UPLOADS = 3600  # seconds: older uploads in that folder are from an earlier run
CLASS_SIZE = 32  # trainings at once by default: a class presses Train together and every run starts


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Generative Models Playground")
    p.add_argument("--host", default="127.0.0.1", help="address to bind; 0.0.0.0 serves a class on the LAN (use --auth)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--auth", metavar="USER:PASS", help="require this login (for a class on a LAN)")
    p.add_argument("--teacher", metavar="USER:PASS", help="a teacher's console at /teacher behind this login: every student's samples, pause or stop everyone, send settings or a lesson")
    p.add_argument("--open", action="store_true", help="open the app in the default browser")
    p.add_argument("--max-trainings", type=int, default=CLASS_SIZE,
                   help=f"sessions that may train at once, sharing the cores in turns; more wait in line (default: {CLASS_SIZE}, a class)")
    p.add_argument("--threads", type=int, default=None,
                   help="PyTorch threads of a training that runs alone (default: every core; runs that share the cores use one each)")  # fmt: skip
    p.add_argument("--batching", action="store_true",
                   help="a class's same-shaped runs (GANs on 2-D points) step together as batched models, one per core (README: Batching)")
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="train every run on the Ray cluster at ADDRESS (HOST:6379, or auto); the app stays here (README: A lab of machines)")
    p.add_argument("--max-file-size", default="100mb", help="largest upload accepted")
    args = p.parse_args(argv)
    for name in ("auth", "teacher"):
        if getattr(args, name) and ":" not in getattr(args, name):
            p.error(f"--{name} must look like user:password")
    if args.max_trainings < 1:
        p.error("--max-trainings must be at least 1")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    from playground.classroom import Classroom
    from playground.files import prune, sweep_partial_saves
    from playground.session import warm_up
    from playground.trainer import configure_threads
    from ui import PAGE, build_demo, class_app
    from ui.common import CHECKPOINT_ROOT

    prune(os.environ["GRADIO_TEMP_DIR"], STALE_UPLOADS)
    sweep_partial_saves(CHECKPOINT_ROOT)

    configure_threads(args.threads)
    warm_up()  # a class's first Train does not pay for the process's first training
    classroom = Classroom() if args.teacher else None
    cluster = None
    if args.cluster:
        from playground.cluster import Cluster, ClusterError

        cluster = Cluster(args.cluster)
        try:
            cluster.connect()
        except ClusterError as e:  # a wrong address stops here, with Ray's reason
            raise SystemExit(f"app.py: {e}") from None
        atexit.register(cluster.shutdown)
    demo = build_demo(max_trainings=args.max_trainings, classroom=classroom, batching=args.batching, cluster=cluster)
    auth = tuple(args.auth.split(":", 1)) if args.auth else None
    options = dict(max_file_size=args.max_file_size, **PAGE)
    max_threads = 40 + args.max_trainings  # each training's stream holds a worker thread while it waits for its next frame
    demo.queue(default_concurrency_limit=None)
    if classroom is None:
        demo.launch(server_name=args.host, server_port=args.port, auth=auth, inbrowser=args.open, enable_monitoring=False,
                    show_error=True,  # a value only an API caller can send (None for a slider) says what was wrong
                    footer_links=[], max_threads=max_threads, **options)  # fmt: skip
        return
    import uvicorn

    console = build_demo(max_trainings=args.max_trainings, pool=demo.pool, classroom=classroom, teacher=True)
    console.queue(default_concurrency_limit=None)
    app = class_app(demo, console, teacher=tuple(args.teacher.split(":", 1)), auth=auth, max_threads=max_threads, **options)
    url = f"http://{'localhost' if args.host in ('127.0.0.1', '0.0.0.0') else args.host}:{args.port}"
    print(f"Students: {url}/    The teacher's console: {url}/teacher", flush=True)
    if args.open:
        import webbrowser

        threading.Timer(2.0, webbrowser.open, (f"{url}/teacher",)).start()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")

if __name__ == "__main__":
    main()
