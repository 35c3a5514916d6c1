"""A class on one server, through gradio_client: runs nobody can stop, Stop and Reset for runs
still in the queue, and sessions that leave giving their models back.

The app here has one training slot, so that every other Train waits in the queue."""

import gc
import socket
import threading
import time
import weakref
from pathlib import Path

import pytest
from gradio_client import Client

GAN = dict(upload=None, hidden=32)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    import ui
    import ui.common
    from ui import build_demo

    ui.CLOSE_AFTER = 0.5  # a page that went away closes soon (60 s in the app)
    ui.FORGET_AFTER = 0.5  # and a closed session's Gradio entry goes soon (5 s in the app)
    ui.common.CHECKPOINT_ROOT = tmp_path_factory.mktemp("class-checkpoints")
    demo = build_demo(max_trainings=1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.queue(default_concurrency_limit=None).launch(server_port=port, prevent_thread_lock=True, quiet=True, enable_monitoring=False)
    demo.url = f"http://127.0.0.1:{port}/"
    yield demo
    demo.close()


def training_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "playground-train" and t.is_alive()]


def wait_for(predicate, timeout=10.0, what="condition", detail=None):
    """Wait for predicate(); on time-out say what was waited for and, when given, detail()
    (the state of the calls and runs: a rare failure should say why)."""
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}" + (f": {detail()}" if detail else ""))


def run_state(app, jobs=()) -> str:
    calls = [(j.done(), j.status().code.name, (j.outputs()[-1][0][:60] if j.outputs() else None)) for j in jobs]
    return f"training threads {len(training_threads())}, pool running {app.pool.running}, calls (done, status, last) {calls}"


def settled(app, timeout=6.0):
    """No training thread left and every slot free (a run ends within its 2 s lease)."""
    wait_for(lambda: not training_threads() and app.pool.running == 0, timeout, "every training to end", lambda: run_state(app))


OPEN: list[Client] = []  # the clients clients() made, for close_what_a_failure_left


def clients(app, n):
    made = [Client(app.url, download_files=False, verbose=False) for _ in range(n)]
    OPEN.extend(made)
    return made


@pytest.fixture(autouse=True)
def close_what_a_failure_left():
    """A test that fails half-way leaves its clients streaming, and a run whose client still
    watches it rightly trains on, holding the app's one slot: close their tabs, so that one
    failure does not make every later test time out waiting for that slot."""
    yield
    while OPEN:
        c = OPEN.pop()
        if not c._kill_heartbeat.is_set():  # not closed by the test
            close_tab(c)


def train_requested(app, client) -> bool:
    """Whether the server has taken `client`'s Train into its queue: the validator has recorded
    the request, so a Stop or Reset from now on voids it. (submit() returns before the request
    reaches the server, and under load a Stop sent after it can get there first; that Stop is
    older than the Train, which then rightly trains.)"""
    entry = app.state_holder.session_data.get(client.session_hash)
    session = entry.state_data.get(app.train_tab.session._id) if entry is not None else None
    return session is not None and session._requested_after is not None


def drop_heartbeat(client: Client) -> None:
    """Open and drop a heartbeat stream of the client's session, as a closing tab or a lost
    connection does (Gradio then runs demo.unload)."""
    import httpx

    with httpx.stream("GET", client.heartbeat_url.format(session_hash=client.session_hash), timeout=10) as r:
        next(r.iter_lines())


def close_tab(client: Client) -> None:
    """What a browser does when its tab closes: its heartbeat stream to the server drops.
    gradio_client's own Client.close() only notices at the next heartbeat, up to 15 s later, so
    the test drops a heartbeat stream of its own."""
    drop_heartbeat(client)
    client.close()


def step_of(status: str) -> int:
    return int(status.split("step **")[1].split("**")[0].replace(",", ""))


def streaming(job, n=2):
    return len(job.outputs()) >= n and "training" in job.outputs()[-1][0]


@pytest.mark.parametrize("delay", [0.05, 0.3])
def test_cancelling_the_running_and_the_queued_calls_leaves_no_training_behind(app, delay):
    """The issue's sequence: one session trains, five wait; the running call is cancelled and
    right after it the queued ones (a queued call that has just been handed the slot is the one
    whose stream Gradio drops without closing it). Before the fix, two threads trained on for
    ever and a new session got a slot beside them."""
    settled(app)
    cs = clients(app, 6)
    jobs = [c.submit(**GAN, api_name="/train") for c in cs]
    wait_for(lambda: any(streaming(j) for j in jobs), 60, "one training to stream")
    first = next(j for j in jobs if streaming(j))
    assert app.pool.running == 1 and len(training_threads()) == 1  # the others wait in the queue
    first.cancel()
    time.sleep(delay)
    for j in jobs:
        if j is not first:
            j.cancel()
    settled(app)
    late = Client(app.url, download_files=False, verbose=False)
    job = late.submit(**GAN, api_name="/train")
    wait_for(lambda: streaming(job), 30, "a new session to train")
    assert app.pool.running == 1 and len(training_threads()) == 1  # the pool limit holds
    job.cancel()
    settled(app)
    for c in [*cs, late]:
        c.close()


def test_closing_clients_ends_their_runs_and_frees_the_slot(app):
    settled(app)
    c = Client(app.url, download_files=False, verbose=False)
    job = c.submit(**GAN, api_name="/train")
    wait_for(lambda: streaming(job), 30, "training")
    close_tab(c)
    settled(app)


@pytest.mark.parametrize("how", ["/stop", "/reset"])
def test_stop_and_reset_take_a_waiting_run_out_of_the_queue(app, how):
    settled(app)
    owner, *waiting = clients(app, 4)
    running = owner.submit(**GAN, api_name="/train")
    wait_for(lambda: streaming(running), 30, "the first training")
    queued = [c.submit(**GAN, api_name="/train") for c in waiting]
    wait_for(lambda: all(train_requested(app, c) for c in waiting), 20, "the Train requests to reach the queue")
    for c in waiting:
        c.predict(api_name=how)
    owner.predict(api_name="/stop")
    wait_for(lambda: running.done() and all(j.done() for j in queued), 20, "every call to end", lambda: run_state(app, [running, *queued]))
    for j in queued:  # each ended without training: no model, no step
        assert "No model yet" in j.outputs()[-1][0]
    settled(app)
    for c in [owner, *waiting]:
        c.close()


def test_a_session_that_leaves_gives_its_model_back(app):
    """After a session's tab closes, nothing holds its trainer (model, optimizers, data,
    curves): the memory is free again, not an hour later."""
    settled(app)
    c = Client(app.url, download_files=False, verbose=False)
    job = c.submit(**GAN, api_name="/train")
    wait_for(lambda: streaming(job, 3), 30, "training")
    (run,) = [r for r in list(app.pool._runs) if not r.done]
    trainer = weakref.ref(run.trainer)
    del run
    c.predict(api_name="/stop")
    wait_for(job.done, 10, "the stream to end")
    close_tab(c)

    def freed():
        gc.collect()
        return trainer() is None

    wait_for(freed, 10, "the closed session's trainer to be freed")
    # and Gradio's own entry for the session (its copy of the page's config) goes too
    sid = c.session_hash
    gone = lambda: sid not in app.state_holder.session_data  # noqa: E731
    wait_for(gone, 10, "the session's entry to go")
    time.sleep(1.0)  # each heartbeat stream that drops re-creates an empty entry: it goes as well
    wait_for(gone, 10, "the re-created entry to go")


def test_a_tab_closed_while_training_gives_its_model_back(app):
    """The running stream's last calls after the tab closed are not the page coming back."""
    settled(app)
    (c,) = clients(app, 1)
    job = c.submit(**GAN, api_name="/train")
    wait_for(lambda: streaming(job, 3), 30, "training")
    (run,) = [r for r in list(app.pool._runs) if not r.done]
    trainer = weakref.ref(run.trainer)
    del run
    close_tab(c)

    def freed():
        gc.collect()
        return trainer() is None

    wait_for(freed, 10, "the closed session's trainer to be freed")


def test_a_page_that_comes_back_within_the_grace_keeps_its_model(app, monkeypatch):
    """A heartbeat that drops for a moment (Wi-Fi, or a crowded server answering it later than
    gradio_client's 20 s read timeout) runs the page's unload; a page heard from again before
    CLOSE_AFTER goes on with its model, and one that is not loses it (the test above)."""
    import ui

    monkeypatch.setattr(ui, "CLOSE_AFTER", 3.0)
    unloads = []
    close = ui.close_session
    monkeypatch.setattr(ui, "close_session", lambda *a: (close(*a), unloads.append(a[2].session_hash)))
    settled(app)
    (c,) = clients(app, 1)
    assert step_of(c.predict(**GAN, api_name="/step")[0]) == 1
    drop_heartbeat(c)
    wait_for(lambda: c.session_hash in unloads, 10, "the page's unload")
    assert step_of(c.predict(**GAN, api_name="/step")[0]) == 2  # the same model, within the grace
    time.sleep(3.5)  # past the grace: the session was used, so it stays open
    session = app.state_holder.session_data[c.session_hash].state_data[app.train_tab.session._id]
    assert not session.closed and not app.state_holder.session_data[c.session_hash].is_closed
    assert step_of(c.predict(**GAN, api_name="/step")[0]) == 3


def test_a_session_that_leaves_deletes_its_uploads(app, tmp_path):
    import uuid

    from gradio_client import handle_file

    name = f"points-{uuid.uuid4().hex[:8]}.csv"
    csv = tmp_path / name
    csv.write_text("x,y\n" + "\n".join(f"{i % 7 / 7:.3f},{i % 5 / 5:.3f}" for i in range(200)))
    c = Client(app.url, download_files=False, verbose=False)
    status = c.predict(**{**GAN, "data": "upload", "upload": handle_file(str(csv))}, api_name="/step")[0]
    assert "stepped" in status
    (copy,) = [p for p in Path(gradio_upload_folder()).rglob(name)]  # Gradio's temporary copy
    close_tab(c)
    wait_for(lambda: not copy.exists(), 10, "the upload to be deleted")


def gradio_upload_folder() -> str:
    from gradio.utils import get_upload_folder

    return get_upload_folder()


def test_stop_ends_the_stream_with_a_stopped_frame(app):
    """Stop stops the run and its stream shows so (the stream is not cancelled under it)."""
    (c,) = clients(app, 1)
    job = c.submit(**GAN, api_name="/train")
    wait_for(lambda: streaming(job), 30, "the run to stream")
    c.predict(api_name="/stop")
    wait_for(job.done, 10, "the stream to end")
    assert "stopped" in job.outputs()[-1][0]
    c.close()
    settled(app)

