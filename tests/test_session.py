"""The app's per-user logic without Gradio: continue vs new model, bad settings, curves."""

import os
import time
from pathlib import Path

import pytest

from playground.curves import MAX_CURVE_POINTS
from playground.data import DataError
from playground.models import ConfigError
from playground.session import Session, TrainSettings, curve_frames, safe_name, status_text

SMALL = {"hidden": 32}


def test_same_settings_continue_the_model_and_live_ones_apply():
    s = Session()
    t, new = s.prepare(TrainSettings(model=dict(SMALL)))
    assert new
    t.step()
    t2, new2 = s.prepare(TrainSettings(model={**SMALL, "lr": 1e-3}))
    assert t2 is t and not new2 and t.step_count == 1
    assert t.opts["d"].param_groups[0]["lr"] == 1e-3
    t3, new3 = s.prepare(TrainSettings(model={**SMALL, "pack": 2}))
    assert new3 and t3 is not t and t.running is False


@pytest.mark.parametrize(
    "settings,error",
    [
        (TrainSettings(model={**SMALL, "loss": "hinge"}), ConfigError),
        (TrainSettings(data="nope"), DataError),
        (TrainSettings(family="vae", data="moons", model={"likelihood": "bernoulli"}), ConfigError),
    ],
)
def test_bad_settings_leave_the_current_model_alone(settings, error):
    s = Session()
    t, _ = s.prepare(TrainSettings(model=dict(SMALL)))
    t.step()
    with pytest.raises(error):
        s.prepare(settings)
    assert s.trainer is t and t.step_count == 1


def test_sessions_are_independent_copies():
    import copy

    a = Session()
    a.prepare(TrainSettings(model=dict(SMALL)))
    b = copy.deepcopy(a)  # what gr.State does for each new browser session
    assert b.trainer is None and a.trainer is not None


def test_curve_frames_are_long_format_and_downsampled():
    s = Session()
    t, _ = s.prepare(TrainSettings(model=dict(SMALL)))
    for _ in range(30):
        t.step()
    losses, scores = curve_frames(t, "gan")
    assert list(losses.columns) == ["step", "value", "series"]
    assert set(losses.series) == {"D loss", "G loss"} and set(scores.series) == {"D(x)", "D(G(z))"}
    assert len(scores) == 2 * 30
    t.history.rows = [{"step": i, "d_real": 0.5, "d_fake": 0.5} for i in range(3 * MAX_CURVE_POINTS)]
    _, scores = curve_frames(t, "gan")
    assert len(scores) <= 2 * MAX_CURVE_POINTS


def test_save_needs_a_model_and_a_clean_name(tmp_path):
    s = Session(tmp_path)
    with pytest.raises(ConfigError, match="train one first"):
        s.save("x")
    s.prepare(TrainSettings(model=dict(SMALL)))
    assert s.save("../../etc/passwd").parent == tmp_path  # no way out of the folder
    assert safe_name("my model!") == "my-model"
    with pytest.raises(ConfigError, match="give the checkpoint a name"):
        safe_name("///")


def test_status_text():
    assert "press **Train**" in status_text(None)
    s = Session()
    t, _ = s.prepare(TrainSettings(model=dict(SMALL)))
    t.step()
    text = status_text(t, 123.0, "training")
    assert "step **1**" in text and "123 steps/s" in text and "D(x)" in text


def test_app_command_line_defaults_are_safe():
    import app

    a = app.parse_args([])
    assert a.host == "127.0.0.1" and a.port == 7860 and a.auth is None and a.teacher is None and not a.open
    assert app.parse_args(["--auth", "t:secret", "--max-trainings", "4"]).auth == "t:secret"
    assert app.parse_args(["--teacher", "me:pw"]).teacher == "me:pw"
    for bad in (["--auth", "nocolon"], ["--teacher", "nocolon"], ["--max-trainings", "0"], ["--port", "x"]):
        with pytest.raises(SystemExit) as e:
            app.parse_args(bad)
        assert e.value.code == 2


# -- background runs: the pool and the lease (playground/runs.py) ---------------------------------


def _trainer(ring8):
    from playground.trainer import TrainConfig, make_trainer

    return make_trainer("gan", ring8, {"hidden": 16}, TrainConfig(batch_size=32, adapt_threads=False))


def test_a_run_nobody_watches_ends_after_its_lease(ring8):
    from playground.runs import Runner, TrainingPool

    pool = TrainingPool(1)
    run = Runner(_trainer(ring8), pool, lease=0.3)
    assert run.wait(5.0), "a run whose watcher never comes back must end by itself"
    assert run.stopped_by == "lease" and pool.running == 0 and not run.thread.is_alive()


def test_a_watched_run_goes_on_and_drawing_does_not_count_against_the_lease(ring8):
    from playground.runs import Runner, TrainingPool

    run = Runner(_trainer(ring8), TrainingPool(1), lease=0.3)
    for _ in range(4):
        run.touch()
        time.sleep(0.1)
    with run.busy():  # a slow frame, longer than the lease
        time.sleep(0.6)
    assert not run.done and run.trainer.step_count > 0
    run.stop()
    assert run.done and run.stopped_by == "stop"


def test_the_pool_limit_holds_and_a_waiting_run_can_be_stopped(ring8):
    from playground.runs import Runner, TrainingPool

    pool = TrainingPool(1)
    first = Runner(_trainer(ring8), pool, lease=None)
    second = Runner(_trainer(ring8), pool, lease=None)
    time.sleep(0.5)
    assert pool.running == 1 and second.waiting and second.trainer.step_count == 0
    second.stop()  # Stop on a run that waits: it never trains
    assert second.done and second.trainer.step_count == 0
    first.stop()
    assert pool.running == 0 and pool.threads() == []


def test_turns_let_n_in_at_once_first_come_first_served():
    import threading

    from playground.runs import Turns

    turns, order, inside, most = Turns(2), [], [0], [0]
    gate = threading.Event()

    def visit(i):
        with turns.turn() as mine:
            assert mine
            order.append(i)
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            gate.wait(5)
            inside[0] -= 1

    threads = []
    for i in range(6):  # they arrive one after another
        threads.append(threading.Thread(target=visit, args=(i,)))
        threads[-1].start()
        time.sleep(0.05)
    assert order == [0, 1]  # two inside, four waiting in line
    stop = threading.Event()
    stop.set()
    with turns.turn(stop) as mine:  # a run stopped while it waits: no turn, out of the line
        assert mine is False
    gate.set()
    for th in threads:
        th.join(5)
    assert sorted(order[2:]) == [2, 3, 4, 5] and order[:2] == [0, 1] and most[0] == 2


def test_a_full_pool_shares_its_turns_and_says_how_crowded_it_is(ring8):
    from playground.runs import Runner, TrainingPool

    pool = TrainingPool(3, stepping=1)
    assert pool.crowding() == 1.0
    runs = [Runner(_trainer(ring8), pool, lease=None) for _ in range(3)]
    _wait(lambda: pool.running == 3 and all(r.trainer.step_count >= 3 for r in runs))  # none starves
    assert pool.crowding() == 3.0
    for r in runs:
        r.stop()
    assert pool.crowding() == 1.0 and pool.threads() == []


def test_a_runs_first_step_goes_ahead_of_the_line_behind_other_first_steps():
    """A run that has not stepped yet joins the line behind the other first steps but ahead
    of runs that have (its owner sees a picture at once; newcomers keep their order)."""
    import threading

    from playground.runs import Turns

    turns, order = Turns(1), []
    assert turns.acquire()  # the place is taken: everyone below waits

    def wait(name, first):
        assert turns.acquire(first=first)
        order.append(name)
        turns.release()

    threads = []
    for name, first in (("old-1", False), ("old-2", False), ("new-1", True), ("new-2", True)):
        threads.append(threading.Thread(target=wait, args=(name, first)))
        threads[-1].start()
        time.sleep(0.05)
    assert turns.waiting == 4
    turns.release()
    for th in threads:
        th.join(5)
    assert order == ["new-1", "new-2", "old-1", "old-2"]


def test_runs_share_the_cores_in_equal_time_slices(ring8):
    """Three same-sized runs on one place to step: each keeps its turn for a slice of steps,
    then hands it to the next in line, so their step counts stay close (not one run hogging
    the core, and not a switch after every step)."""
    from playground import runs
    from playground.runs import Runner, TrainingPool

    pool = TrainingPool(3, stepping=1)
    handed = []
    release = pool.turns.release
    pool.turns.release = lambda: (handed.append(1), release())[1]
    group = [Runner(_trainer(ring8), pool, lease=None) for _ in range(3)]
    _wait(lambda: min(r.trainer.step_count for r in group) >= 60)
    counts = [r.trainer.step_count for r in group]
    for r in group:
        r.stop()
    assert max(counts) <= 2 * min(counts), f"unfair shares: {counts}"
    steps, turns_taken = sum(counts), len(handed)
    assert turns_taken < steps / 2, f"{turns_taken} turns for {steps} steps: a turn must last a slice of steps"
    assert runs.TURN_SLICE > 0 and pool.turns.waiting == 0 and pool.running == 0


def test_a_crowded_run_steps_on_one_thread_and_takes_the_cores_back_alone(ring8):
    import contextlib

    import torch

    t = _trainer(ring8)
    crowd, seen = [True], []

    @contextlib.contextmanager
    def around():
        seen.append((crowd[0], torch.get_num_threads()))
        yield

    most = torch.get_num_threads()
    for i, _ in enumerate(t.run(steps=40, report_every=0.0, around_step=around, crowded=lambda: crowd[0])):
        if i == 20:
            crowd[0] = False
    assert all(n == 1 for c, n in seen[1:20] if c), seen[:20]
    assert seen[-1] == (False, most) and torch.get_num_threads() == most


def test_a_class_all_starts_at_once_without_waiting_for_each_other(ring8):
    """Six sessions press Train on a pool with room for them: every run steps while all six
    are still training (none waits for another to end), and the pool limit still holds."""
    from playground.runs import Runner, TrainingPool

    pool = TrainingPool(8)
    group = [Runner(_trainer(ring8), pool, lease=None) for _ in range(6)]
    _wait(lambda: all(r.trainer.step_count > 0 for r in group))
    assert pool.running == 6 and not any(r.done for r in group)
    for r in group:
        r.stop()
    assert pool.running == 0


def _wait(predicate, timeout=20.0):
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_stop_and_reset_cancel_a_train_request_still_waiting():
    s = Session()
    assert s.may_train()  # nothing pressed yet
    s.request_training()
    assert s.may_train()
    s.stop()
    assert not s.may_train()  # the waiting request is void
    s.request_training()
    s.reset()
    assert not s.may_train()
    s.request_training()
    assert s.may_train()
    s.close()
    assert not s.may_train() and s.trainer is None and s.views == {}


def test_a_stop_while_the_model_is_set_up_ends_the_run_it_was_for():
    """Stop pressed after Train's turn came (may_train) but before the run starts (the model
    was being built): the run start() begins ends at once and frees its slot."""
    s = Session(adapt_threads=False)
    try:
        s.request_training()  # the validator, as Train joins the queue
        assert s.may_train()  # its turn came, no Stop yet
        t, _ = s.prepare(TrainSettings(model={"hidden": 32}))
        s.stop()  # ...pressed while prepare() loaded data and built the model
        runner = s.start(t)
        deadline = time.time() + 5
        while not runner.done and time.time() < deadline:
            time.sleep(0.02)
        assert runner.done and s.pool.running == 0 and t.step_count <= 1
        # a fresh model replacing the old one is not a Stop: a Train that asked for it still trains
        s.request_training()
        _, new = s.prepare(TrainSettings(model={"hidden": 16}))
        assert new and s.may_train()
    finally:
        s.close()


def test_prune_and_the_partial_save_sweep_delete_only_what_is_old(tmp_path):
    import os

    from playground.files import prune, sweep_partial_saves

    old, new = tmp_path / "exports" / "old", tmp_path / "exports" / "new"
    for d in (old, new):
        d.mkdir(parents=True)
        (d / "a.png").write_bytes(b"x")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert prune(tmp_path / "exports", 3600) == 1 and not old.exists() and new.exists()

    ck = tmp_path / "sessions" / "abc"
    ck.mkdir(parents=True)
    stale, fresh, kept = ck / ".my-model.x1y2.tmp", ck / ".my-model.z3.tmp", ck / "my-model.safetensors"
    for f in (stale, fresh, kept):
        f.write_bytes(b"x")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    assert sweep_partial_saves(tmp_path) == 1  # a Save still writing (fresh) is left alone
    assert not stale.exists() and fresh.exists() and kept.exists()


def test_closing_a_session_deletes_the_uploads_it_adopted(tmp_path):
    up = tmp_path / "gradio" / "3f2a" / "faces.zip"
    up.parent.mkdir(parents=True)
    up.write_bytes(b"PK")
    s = Session()
    s.adopt(up)
    s.adopt(None)
    s.close()
    assert not up.exists() and not up.parent.exists()


def test_closing_sessions_gives_memory_back_once_for_a_class_that_leaves_at_once(monkeypatch):
    import playground.session as ps

    trims = []
    monkeypatch.setattr(ps, "_trim", lambda: trims.append(time.monotonic()))
    monkeypatch.setattr(ps, "_trim_timer", None)
    monkeypatch.setattr(ps, "_last_trim", float("-inf"))
    monkeypatch.setattr(ps, "TRIM_SPACING", 0.0)
    for _ in range(5):  # five tabs close within the delay
        ps.give_back_memory_soon(0.2)
    _wait(lambda: trims)
    time.sleep(0.3)
    assert len(trims) == 1
    ps.give_back_memory_soon(0.05)  # a later one gets its own
    _wait(lambda: len(trims) == 2)
    # each trim holds the interpreter for a whole collection: at most one per TRIM_SPACING
    monkeypatch.setattr(ps, "TRIM_SPACING", 3600.0)
    ps.give_back_memory_soon(0.05)
    time.sleep(0.3)
    assert len(trims) == 2 and ps._trim_timer.is_alive()  # put off, not dropped
    ps._trim_timer.cancel()


def _open_font_files() -> int:
    n = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            n += os.readlink(fd).endswith((".ttf", ".otf"))
        except OSError:  # (the listing's own, closed by now)
            pass
    return n


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files in /proc")
def test_giving_memory_back_closes_the_fonts_each_drawing_thread_kept(ring8):
    """matplotlib keeps a thread's fonts open for that thread (a server's worker threads take
    turns drawing): the trim after a class leaves closes them."""
    import threading

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    import playground.session as ps
    from playground.viz import points_figure

    before = _open_font_files()
    barrier = threading.Barrier(4)

    def draw():  # four threads alive at once, each drawing text
        FigureCanvasAgg(points_figure(ring8.x[:50], None, title="a class")).draw()
        barrier.wait()

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _open_font_files() >= before + 4
    ps._trim()
    assert _open_font_files() == 0


def test_forgetting_a_closed_sessions_entry_gives_its_memory_back(monkeypatch):
    """Gradio's entry for a session goes a few seconds after the session closed, after the
    close's own trim: what it still held is handed back too (and nothing is for an entry kept)."""
    import threading
    from types import SimpleNamespace

    import playground.session as ps
    import ui

    trims = []
    monkeypatch.setattr(ps, "_trim", lambda: trims.append(1))
    monkeypatch.setattr(ps, "_trim_timer", None)
    monkeypatch.setattr(ps, "TRIM_SPACING", 0.0)
    monkeypatch.setattr(ps, "give_back_memory_soon", lambda delay=0.0, f=ps.give_back_memory_soon: f(0.0))
    monkeypatch.setattr(ui, "give_back_memory_soon", ps.give_back_memory_soon)
    open_session, closed = Session(), Session()
    closed.close()
    trims.clear()
    held = SimpleNamespace(lock=threading.Lock(), time_last_used={"a": 0, "b": 0},
                           session_data={"a": SimpleNamespace(state_data={1: open_session}), "b": SimpleNamespace(state_data={1: closed})})  # fmt: skip
    ui.forget_session(held, "a", 1)  # the tab came back: kept, nothing to give back
    time.sleep(0.1)
    assert "a" in held.session_data and not trims
    ui.forget_session(held, "b", 1)
    _wait(lambda: trims)
    assert "b" not in held.session_data and "b" not in held.time_last_used
