"""The Gradio app: one module per tab; the only place Gradio is imported.

`build_demo()` assembles the tabs around one per-session `Session` (a gr.State), so every
browser session has its own models. Nothing heavy happens at import time.
"""

from __future__ import annotations

import datetime
import threading
import urllib.parse
from pathlib import Path

import fastapi
import gradio as gr

from playground import lessons
from playground.classroom import Classroom
from playground.links import settings_from_query
from playground.onnx_export import decoder_dir
from playground.runs import TrainingPool
from playground.session import Session, give_back_memory_soon

from .class_tab import ClassTab
from .common import Blocks
from .explore_tab import ExploreTab
from .inspect_tab import InspectTab
from .train_tab import TrainTab

CSS = """
.pixelated img:not(.pg-shrunk) { image-rendering: pixelated; }  /* see SHARP below */
/* full screen (the projector): the picture fills it, pixelated (Gradio's never enlarged it) */
.pixelated.fullscreen img { object-fit: contain !important; image-rendering: pixelated; }
.pg-hidden { display: none !important; }
#explore-image img { width: 100%; height: 100%; object-fit: contain; }  /* the page draws at the model's size */
#status { min-height: 2.5em; }
.caption { font-size: 0.85em; opacity: 0.85; }
footer { display: none !important; }
"""

# Files the page loads from this server (never from the internet): Explore's in-page decoding
# and the onnxruntime-web it runs on (ui/vendor/onnxruntime-web/README.md), and the decoders
# exported for it
HERE = Path(__file__).resolve().parent
# Pictures with hard pixel edges are shown pixelated when the page makes them larger (a 28 px
# digit on the projector), and smoothly when it makes them smaller: a 450 px plot shrunk into a
# narrow column drops rows of pixels, and its legend read "cata" and "generatec".
SHARP = """<script>(() => {
  const fit = (img) => img.classList.toggle("pg-shrunk", img.clientWidth > 0 && img.clientWidth < img.naturalWidth);
  const all = () => document.querySelectorAll(".pixelated img").forEach(fit);
  document.addEventListener("load", (e) => { if (e.target.tagName === "IMG" && e.target.closest(".pixelated")) fit(e.target); }, true);
  window.addEventListener("resize", all);
})();</script>"""
HEAD = f'<script src="gradio_api/file={urllib.parse.quote(str(HERE / "static" / "explore_decode.js"))}"></script>' + SHARP
PAGE = dict(css=CSS, head=HEAD)  # what launch() (or mount_gradio_app) takes for every page of the app


INTRO = """# Generative Models Playground
Train small GANs, VAEs, flows, autoregressive and diffusion models live on your CPU. Pick a model
and data, press **Train**, watch the samples and curves change. **Explore** a model's latent space
with sliders and watch a sample being made step by step; **Inspect** what happens inside (what the
discriminator sees, how much each latent dimension is used, a flow's density, the noising and
denoising chain), or start a one-click lesson."""


TEACHER_INTRO = """# Your class: the teacher's console
Your students open this address without `/teacher`. The **Class** tab shows what each of them
sees, and sends them settings or a lesson; **Train**, **Explore** and **Inspect** are your own,
as your students have them (what you set up in Train is what *Send my settings* sends)."""


def build_demo(max_trainings: int = 1, *, pool: TrainingPool | None = None, classroom: Classroom | None = None, teacher: bool = False,
               batching: bool = False, cluster=None) -> gr.Blocks:  # fmt: skip
    """The whole app. `max_trainings`: how many sessions may train at once (others queue);
    `batching`: same-shaped runs step together as one batched model (playground/cohort.py);
    `cluster`: a playground.cluster.Cluster that trains the runs (playground/cluster.py).
    With a `classroom` (the app has a teacher), every session joins it and its page shows what
    the teacher sends; `teacher` builds the teacher's page, which has the Class tab (serve it
    behind the teacher's login: see `serve_class`). The teacher's page and the students' share
    the `pool`."""
    decoders = decoder_dir()
    gr.set_static_paths([str(HERE / "static"), str(HERE / "vendor"), str(decoders)])
    pool = pool or TrainingPool(max_trainings, batching=batching, cluster=cluster)  # every session's runs share it: the limit holds in the process
    if teacher and classroom is None:
        raise ValueError("the teacher's page needs the classroom its students join")
    title = "Generative Models Playground" + (": the teacher's console" if teacher else "")
    with Blocks(title=title, delete_cache=(3600, 3600)) as demo:
        template = Session(pool=pool, classroom=classroom)
        template.teacher = teacher  # each browser session's copy joins the class as a teacher or a student
        session = gr.State(template, time_to_live=6 * 3600, delete_callback=lambda s: s.close())
        demo.pool, demo.classroom = pool, classroom
        gr.Markdown(TEACHER_INTRO if teacher else INTRO)
        with gr.Tabs(selected="class" if teacher else "train") as tabs:
            with gr.Tab("Train", id="train") as train:
                demo.train_tab = TrainTab(session, max_trainings, in_class=classroom is not None and not teacher)
            with gr.Tab("Explore", id="explore") as explore:
                demo.explore_tab = ExploreTab(session, decoders)
            with gr.Tab("Inspect", id="inspect") as inspect_item:
                tt = demo.train_tab  # a lesson's settings show in the Train tab's controls
                demo.inspect_tab = InspectTab(session, max_trainings, show_settings=(tt.settings_outputs(), tt.settings_updates))
            if teacher:
                with gr.Tab("Class", id="class"):
                    demo.class_tab = ClassTab(session, classroom, demo.train_tab)
        ex = demo.explore_tab
        demo.load(ex.on_refresh, None, ex.pick, api_name=False)
        opened = explore.select(ex.on_open, [session, ex.pick, ex.page_draws], ex.pick_outputs, api_name="explore_open", api_visibility="undocumented", **ex.pick_js)
        opened.then(**ex.decoder_step())
        it = demo.inspect_tab  # its live refresh ticks only while the Inspect tab is open
        inspect_item.select(it.on_open, [session, it.source], [*it.views, it.timer], api_name=False, concurrency_limit=None)
        for other in (train, explore):
            other.select(it.on_close, None, it.timer, api_name=False, concurrency_limit=None)

        wire_links(demo, session, tabs)
        if classroom is not None:
            demo.load(Session.join_class, session, None, api_name=False, show_progress="hidden", concurrency_limit=None)
            if not teacher:
                wire_messages(demo, session, tabs)

        def on_unload(request: gr.Request):
            close_session(demo, session, request)

        demo.unload(on_unload)
    return demo


def wire_links(demo: gr.Blocks, session: gr.State, tabs: gr.Tabs) -> None:
    """A page opened with a query string (playground/links.py) shows its settings in the Train
    tab and opens its tab; a lesson's link opens Inspect with the lesson named. The tab's own
    opening event then runs (a programmatic selection does not fire it)."""
    tt, ex, it = demo.train_tab, demo.explore_tab, demo.inspect_tab

    outputs = [*tt.settings_outputs(), tabs, it.lesson_md]

    def open_link(request: gr.Request):
        updates, link = tt.on_link_open(request)
        if link.lesson:
            updates.update(lesson_updates(tabs, it, link.lesson))
        elif link.tab:
            updates[tabs] = gr.Tabs(selected=link.tab)
        return updates or tuple(gr.skip() for _ in outputs)  # no link: nothing changes (an empty dict reads as one value)

    def tab_of(request: gr.Request) -> str | None:
        link = settings_from_query(dict(request.query_params)) if request is not None else None
        return None if link is None else ("inspect" if link.lesson else link.tab)

    def open_explore(state, choice, page_draws, request: gr.Request):
        if tab_of(request) != "explore":
            return tuple(gr.skip() for _ in ex.pick_outputs)
        return ex.on_open(state, choice, page_draws, request)

    def open_inspect(state, choice, request: gr.Request):
        if tab_of(request) != "inspect":
            return (*[gr.skip()] * len(it.views), gr.skip())
        return it.on_open(state, choice, request)

    quiet = dict(api_name=False, show_progress="hidden", concurrency_limit=None)  # no spinner, no wait behind others
    opened = demo.load(open_link, None, outputs, **quiet).then(open_explore, [session, ex.pick, ex.page_draws], ex.pick_outputs, **quiet, **ex.pick_js)
    opened.then(open_inspect, [session, it.source], [*it.views, it.timer], **quiet)
    opened.then(**ex.decoder_step())  # beside it: a lesson's link does not wait for exports


def lesson_updates(tabs: gr.Tabs, it: InspectTab, key: str, sender: str = "") -> dict:
    """Open the Inspect tab with a lesson named, ready to start."""
    lesson = lessons.get(key)
    by = f" ({sender} sent it)" if sender else ""
    return {tabs: gr.Tabs(selected="inspect"), it.lesson_md: f"**{lesson.title}**{by}: press the **{lesson.title}** button above to start it."}


MESSAGES_EVERY = 3.0  # seconds between two looks of a student's page for what the teacher sent


def wire_messages(demo: gr.Blocks, session: gr.State, tabs: gr.Tabs) -> None:
    """A student's page looks every few seconds for what the teacher sent: settings appear in
    its Train tab (the student presses Train), a lesson opens in Inspect."""
    tt, it = demo.train_tab, demo.inspect_tab
    outputs = [*tt.settings_outputs(), tabs, it.lesson_md, tt.status]

    def on_message(state: Session):
        m = state.take_message()
        if m is None:
            return tuple(gr.skip() for _ in outputs)
        if m.kind == "lesson":
            gr.Info(f"A lesson from {m.sender}: {lessons.get(m.payload).title}")
            return lesson_updates(tabs, it, m.payload, m.sender)
        gr.Info(f"New settings from {m.sender}: press Train to try them.")
        return {**tt.settings_updates(m.payload), tt.status: f"**Settings from {m.sender}**: press **Train** to try them."}

    timer = gr.Timer(MESSAGES_EVERY)
    timer.tick(on_message, session, outputs, api_name="messages", api_visibility="undocumented", concurrency_limit=None, show_progress="hidden")


def class_app(demo: gr.Blocks, console: gr.Blocks, *, teacher: tuple[str, str], auth: tuple[str, str] | None = None,
              max_threads: int = 40, **options) -> fastapi.FastAPI:  # fmt: skip
    """One web app serving both pages on one port: the students' (`demo`, at /, behind `auth`
    when given) and the teacher's console (at /teacher, always behind the teacher's login).
    The students' page has no Class tab and none of its endpoints: a student cannot reach them
    even by API. `options` go to both pages (css, max_file_size, ...). Serve it with uvicorn."""
    app = fastapi.FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    for blocks in (console, demo):  # what launch(max_threads=) sets
        blocks.max_threads = max_threads
        blocks._queue.max_thread_count = max_threads
    common = dict(footer_links=[], enable_monitoring=False, show_error=True, **options)

    @app.get("/teacher", include_in_schema=False)
    def teacher_page():  # the address app.py prints, without the slash the mounted page needs
        return fastapi.responses.RedirectResponse("teacher/")  # relative: right behind a proxy's prefix too

    gr.mount_gradio_app(app, console, "/teacher", auth=teacher, auth_message="The teacher's console of this class.", **common)
    gr.mount_gradio_app(app, demo, "/", auth=auth, **common)  # last: "/" would take every path
    return app


CLOSE_AFTER = 60.0  # seconds a page that went away has to come back before its session closes
FORGET_AFTER = 5.0  # seconds between a session closing and Gradio's entry for it being dropped


def close_session(demo: gr.Blocks, state: gr.State, request: gr.Request) -> None:
    """A page went away (Gradio runs the unload when the page's heartbeat stream drops: a closed
    tab, but also a connection lost for a moment, or a heartbeat a crowded server answered too
    late for the client's read timeout). Its training stops now; its models, data and pictures
    are given back `CLOSE_AFTER` seconds later, unless the page has been heard from since (a
    browser reopens its heartbeat with its next call): then the session goes on as it was.
    (Gradio itself would keep a closed session's state for an hour, and calls the State's
    delete_callback only for a state that has been written since.)"""
    held = getattr(demo, "state_holder", None)
    sid = getattr(request, "session_hash", None)
    if held is None or sid is None or sid not in held:
        return
    session = held.session_data[sid].state_data.get(state._id)
    if session is not None:
        session.stop()
    left = datetime.datetime.now()  # Gradio's own clock for a session's last use (time_last_used)
    later(CLOSE_AFTER, end_session, held, sid, state._id, left)


def end_session(held, sid: str, state_id: int, left: datetime.datetime) -> None:
    """`CLOSE_AFTER` seconds after the page went away at `left`: a page heard from since is back
    (Gradio's mark that it closed is taken off, so its state is not dropped an hour on);
    otherwise its Session closes, and Gradio's entry for it is forgotten a few seconds later,
    once its last events have ended (Gradio never drops its per-session copy of the page's
    config, ~0.4 MB for this app)."""
    entry = held.session_data.get(sid)
    if entry is None:
        return
    session = entry.state_data.get(state_id)
    # the calls of a stream that was running when the page went away are not the page coming back
    quiet_since = max(left, getattr(session, "stream_ended", None) or left)
    if held.time_last_used.get(sid, left) > quiet_since:
        entry.is_closed = False
        return
    if session is not None:
        session.close()
    later(FORGET_AFTER, forget_session, held, sid, state_id)


def later(seconds: float, fn, *args) -> None:
    """fn(*args) on a daemon thread `seconds` from now (a server that stops does not wait for it)."""
    timer = threading.Timer(seconds, fn, args)
    timer.daemon = True
    timer.start()


def forget_session(held, sid: str, state_id: int) -> None:
    """Drop a closed session's whole entry from Gradio's state holder, unless it holds an open
    Session again (the tab came back and used the app since). A session's every heartbeat
    stream runs the unload when it drops, and each run re-creates an empty entry first, so an
    entry is dropped on each of them. A browser that comes back later gets a fresh session, as
    it would an hour later (its models were closed). The session's message queue in Gradio's
    event queue stays: a client's stream can still be reading it (Gradio then answers 404 with a
    traceback), and Gradio keeps at most 2,000 of them (a few KB each) in an LRU cache."""
    with held.lock:
        entry = held.session_data.get(sid)
        if entry is None:
            return
        value = entry.state_data.get(state_id)
        if value is not None and not value.closed:
            return
        del held.session_data[sid]
        held.time_last_used.pop(sid, None)
    give_back_memory_soon()  # what only Gradio's entry still held (the Session's own close trimmed before it went)
