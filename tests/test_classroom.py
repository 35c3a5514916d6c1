"""The teacher's console: the class as playground/classroom.py keeps it, and the two pages the
app serves with --teacher (students at /, the console at /teacher behind the teacher's login)."""

from __future__ import annotations

import gc
import socket
import threading
import time

import numpy as np
import pytest

from playground.classroom import Classroom, clean_name
from playground.models import ConfigError
from playground.runs import TrainingPool
from playground.session import Session, TrainSettings

GAN = TrainSettings(family="gan", data="ring8", batch_size=64, model={"hidden": 32})


def wait_for(predicate, timeout=10.0, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def room():
    return Classroom()


def joined(room, n, pool=None, teacher=False):
    pool = pool or TrainingPool(4)
    out = []
    for _ in range(n):
        s = Session(pool=pool, classroom=room, adapt_threads=False)
        s.teacher = teacher
        s.join_class()
        out.append(s)
    return out


def training(session, settings=GAN):
    """Start a run that needs no watcher (lease None), as a Train tab's stream would watch it."""
    t, _ = session.prepare(settings)
    runner = session.start(t, lease=None)
    wait_for(lambda: runner.stepped, what="the run's first step")
    return runner


def test_join_is_once_and_sessions_leave_when_they_close_or_vanish(room):
    a, b = joined(room, 2)
    a.join_class()  # the page's load and its first Train both join: once
    assert [s.number for s in room.sessions()] == [a.number, b.number]
    a.close()
    assert room.sessions() == [b]
    del b
    gc.collect()
    assert room.sessions() == []  # held weakly: a session Gradio dropped is not kept alive here
    template = Session(classroom=room)
    template.__deepcopy__({})  # Gradio's own copies of the State's value join nothing
    assert room.sessions() == []


def test_names_are_cleaned_for_the_wall():
    assert clean_name("  Ana\n\tMaria \x00") == "Ana Maria"
    assert len(clean_name("x" * 200)) == 40
    assert clean_name(None) == "" and clean_name("Chloé") == "Chloé"


def test_wall_shows_each_student_and_draws_a_picture_nobody_drew(room):
    (a, b), (teacher,) = joined(room, 2), joined(room, 1, teacher=True)
    a.name = "Ana"
    t, _ = a.prepare(GAN)
    for _ in range(3):
        t.step()  # stepped without a Train tab drawing it (a lesson, a script)
    teacher.prepare(GAN)
    wall = room.wall()
    assert [e["name"] for e in wall] == ["Ana", f"student {b.number}"]  # the teacher is not on it
    ana, other = wall
    assert (ana["family"], ana["data"], ana["step"], ana["state"]) == ("gan", "ring8", 3, "stopped")
    assert ana["picture"].ndim == 3 and ana["picture"].shape[2] == 3 and ana["picture"].dtype == np.uint8
    assert other["picture"] is None and other["state"] == "no model"
    mine = np.zeros((8, 8, 3), np.uint8)
    a.show(t.step_count, mine)
    assert room.wall()[0]["picture"] is mine  # what the student's tab drew is what the wall shows
    assert room.counts() == {"students": 2, "training": 0, "waiting": 0, "paused": 0, "stopped": 1, "no model": 1}


def test_pause_resume_and_stop_everyone_but_the_teacher(room):
    pool = TrainingPool(4)
    students, (teacher,) = joined(room, 2, pool), joined(room, 1, pool, teacher=True)
    runners = [training(s) for s in (*students, teacher)]
    try:
        assert room.pause_all() == 2
        assert [s.trainer.paused for s in students] == [True, True] and not teacher.trainer.paused
        assert room.counts()["paused"] == 2
        assert room.resume_all() == 2 and not any(s.trainer.paused for s in students)
        assert room.stop_all() == 2
        wait_for(lambda: runners[0].done and runners[1].done, what="the students' runs to end")
        assert not runners[2].done  # the teacher's own run goes on
        assert all(s.trainer is not None for s in students)  # their models stay
    finally:
        for r in runners:
            r.stop()


def test_messages_reach_every_student_once_and_the_newest_wins(room):
    (a, b), (teacher,) = joined(room, 2), joined(room, 1, teacher=True)
    assert room.push_settings(GAN) == 2
    assert room.push_lesson("mode-collapse") == 2
    m = a.take_message()
    assert (m.kind, m.payload) == ("lesson", "mode-collapse")  # the older settings are superseded
    assert a.take_message() is None and teacher.take_message() is None
    assert b.take_message().kind == "lesson"
    with pytest.raises(ConfigError, match="there is no lesson"):
        room.push_lesson("no-such-lesson")
    assert a.take_message() is None
    assert room.push_settings(GAN, skip=a) == 1  # a student's own settings go to the others
    assert a.take_message() is None and b.take_message().kind == "settings"


def test_results_fill_in_as_runs_stop(room):
    gan, flow = joined(room, 2)
    gan.name = "G"
    runner = training(gan)
    t_flow, _ = flow.prepare(TrainSettings(family="flow", data="ring8", batch_size=64))
    for _ in range(5):
        t_flow.step()
    rows = {r["student"]: r for r in room.results()}
    assert rows["G"]["result"] == "training…" and rows["G"]["state"] == "training"
    assert "NLL gap" in rows[f"student {flow.number}"]["result"]  # a likelihood model of points: its gap to the entropy
    runner.stop()
    rows = {r["student"]: r for r in room.results()}
    assert rows["G"]["state"] == "stopped" and "/8 modes" in rows["G"]["result"]
    assert rows["G"]["steps"] == gan.trainer.step_count


# -- the two pages, served as `python app.py --teacher t:pw` serves them ----------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    import uvicorn

    import ui.common
    from ui import PAGE, build_demo, class_app

    ui.common.CHECKPOINT_ROOT = tmp_path_factory.mktemp("class-console")
    room = Classroom()
    demo = build_demo(max_trainings=4, classroom=room)
    console = build_demo(max_trainings=4, pool=demo.pool, classroom=room, teacher=True)
    for blocks in (demo, console):
        blocks.queue(default_concurrency_limit=None)
    app = class_app(demo, console, teacher=("teach", "secret"), **PAGE)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, "the server to start")
    yield {"url": f"http://127.0.0.1:{port}/", "room": room, "demo": demo}
    server.should_exit = server.force_exit = True  # the clients' open event streams need not end first
    thread.join(10)
    assert not thread.is_alive()


def test_students_cannot_reach_the_console(served):
    from gradio_client import Client
    from gradio_client.exceptions import AuthenticationError

    student = Client(served["url"], download_files=False, verbose=False)
    endpoints = student.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert "/train" in endpoints and not any(k in endpoints for k in ("/pause_all", "/stop_all", "/send_lesson", "/class_refresh"))
    with pytest.raises(AuthenticationError):
        Client(served["url"] + "teacher/", download_files=False, verbose=False)
    with pytest.raises(Exception, match="Could not login"):
        Client(served["url"] + "teacher/", auth=("teach", "wrong"), download_files=False, verbose=False)


def test_the_teacher_sees_and_steers_the_class(served):
    from gradio_client import Client

    room = served["room"]
    student = Client(served["url"], download_files=False, verbose=False)
    student.predict("Ana", api_name="/name")
    job = student.submit(upload=None, hidden=32, api_name="/train")
    try:
        wait_for(lambda: any(s.name == "Ana" and s.trainer is not None and s.trainer.step_count > 0 for s in room.sessions()), 30, "Ana's run")
        ana = next(s for s in room.sessions() if s.name == "Ana")
        teacher = Client(served["url"] + "teacher/", auth=("teach", "secret"), download_files=False, verbose=False)
        wait_for(lambda: ana.shown is not None, 10, "Ana's first picture")
        counts, wall, *_ = teacher.predict(api_name="/class_refresh")
        assert "1 training" in counts
        assert any(item["caption"].startswith("Ana · GAN on ring8 · step ") for item in wall)

        assert "1 paused" in teacher.predict(api_name="/pause_all")
        assert ana.trainer.paused
        teacher.predict(api_name="/resume_all")
        assert not ana.trainer.paused

        teacher.predict("posterior-collapse", api_name="/send_lesson")
        out = student.predict(api_name="/messages")
        assert any(isinstance(v, str) and "Posterior collapse" in v and "your teacher sent it" in v for v in out), out
        # the teacher's own Train tab settings: a VAE on digits, shown in the student's Train tab
        teacher.predict(family="vae", data="digits", upload=None, api_name="/send_my_settings")
        out = [v.get("value") if isinstance(v, dict) else v for v in student.predict(api_name="/messages")]
        assert "vae" in out and "digits" in out and any(isinstance(v, str) and "Settings from your teacher" in v for v in out), out
        assert all(v == {"__type__": "update"} for v in student.predict(api_name="/messages"))  # nothing new

        teacher.predict(api_name="/stop_all")
        wait_for(lambda: ana.runner.done, 10, "Ana's run to stop")
        table = teacher.predict(api_name="/class_refresh")[-1]
        row = dict(zip(table["headers"], table["data"][0]))
        assert row["student"] == "Ana" and row["state"] == "stopped" and "/8 modes" in row["result"]
    finally:
        job.cancel()


def test_the_consoles_printed_address_opens_it(served):
    """app.py prints .../teacher; the page is mounted at /teacher/ (it answered 404 without the slash)."""
    import urllib.request

    with urllib.request.urlopen(served["url"] + "teacher") as r:
        assert r.status == 200 and r.url.endswith("/teacher/")


def test_the_wall_sends_pictures_as_wide_as_its_row_shows_them():
    """The gallery spreads a short row across its width: three students' pictures, sent at
    192 px, were stretched to about 380 and blurred; a full row keeps them small."""
    import numpy as np

    from ui.class_tab import THUMB, thumb_side, thumbnail

    assert thumb_side(30) == thumb_side(6) == THUMB
    assert thumb_side(3) == 384 and thumb_side(1) == 3 * THUMB
    picture = np.zeros((448, 448, 3), np.uint8)
    assert thumbnail(picture, thumb_side(3)).shape == (384, 384, 3)
    assert thumbnail(picture, thumb_side(30)).shape == (THUMB, THUMB, 3)
    assert thumbnail(picture, thumb_side(1)) is picture  # no larger than it is
