"""The family-agnostic trainer: determinism, pause/stop, live settings, the NaN guard, history."""

import math
import threading

import pytest
import torch

from playground.data import holdout_split
from playground.models import ConfigError
from playground.trainer import History, TrainConfig, TrainingDiverged, make_trainer


def _trainer(data, family="gan", seed=0, **over):
    return make_trainer(family, data, over, TrainConfig(batch_size=64, seed=seed))


def test_same_seed_same_run(ring8):
    a, b = _trainer(ring8), _trainer(ring8)
    for _ in range(5):
        la, lb = a.step(), b.step()
    assert la == lb
    torch.testing.assert_close(a.progress_samples(), b.progress_samples(), rtol=0, atol=0)
    c = _trainer(ring8, seed=1)
    c.step()
    assert not torch.equal(a.progress_samples(), c.progress_samples())


def test_run_streams_reports_with_increasing_steps(ring8):
    t = _trainer(ring8)
    reports = list(t.run(steps=30, report_every=0))
    steps = [r.step for r in reports]
    assert steps == sorted(steps) and steps[-1] == 30 and reports[-1].done
    assert "d_loss" in reports[-1].logs and reports[-1].steps_per_sec > 0


def test_single_phase_steps_and_bad_phase(ring8):
    t = _trainer(ring8)
    assert "g_loss" not in t.step("d") and "d_loss" not in t.step("g")
    assert t.step_count == 2
    with pytest.raises(ConfigError, match="allowed: d, g"):
        t.step("x")
    v = _trainer(ring8, family="vae")
    with pytest.raises(ConfigError, match="not a step of a vae"):
        v.step("d")


def test_pause_resume_stop_from_another_thread(ring8):
    t = _trainer(ring8)
    run = t.run(report_every=0.01)
    next(run)
    t.pause()
    paused = [next(run) for _ in range(3)]
    assert all(r.paused for r in paused)
    assert len({r.step for r in paused}) == 1  # no step while paused
    t.resume()
    assert next(run).step > paused[-1].step
    threading.Timer(0.05, t.stop).start()
    last = list(run)[-1]
    assert last.done


def test_learning_rate_and_beta_change_mid_run(digits):
    t = make_trainer("vae", digits, {}, TrainConfig(batch_size=32))
    t.step()
    t.set(lr=1e-4, beta=2.0)
    assert all(g["lr"] == 1e-4 for o in t.opts.values() for g in o.param_groups)
    assert t.step()["beta"] == 2.0
    with pytest.raises(ConfigError, match="from 0.0 to 20.0"):
        t.set(beta=-1)
    with pytest.raises(ConfigError, match="cannot change while training"):
        t.set(latent_dim=3)
    g = _trainer(digits)
    with pytest.raises(ConfigError, match="allowed: lr"):
        g.set(beta=2.0)


def test_nan_loss_stops_and_restores_last_good_weights(ring8):
    t = make_trainer("gan", ring8, {}, TrainConfig(batch_size=64, snapshot_every=5))
    for _ in range(5):
        t.step()
    good = {k: v.clone() for k, v in t.model.state_dict().items()}
    with torch.no_grad():  # poison the weights, as a too-large learning rate would
        next(t.model.D.parameters()).fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="weights from step 5 were put back.*Lower the learning rate"):
        t.step()
    for k, v in t.model.state_dict().items():
        torch.testing.assert_close(v, good[k])
    assert t.step_count == 5
    t.step()  # and training can go on
    assert t.step_count == 6


def test_history_stays_bounded_and_keeps_the_mean():
    h = History(max_points=10)
    for i in range(1, 1001):
        h.add(i, {"loss": float(i)})
    assert len(h.rows) < 10 and h.width >= 64
    cols = h.columns()
    assert cols["step"] == sorted(cols["step"])
    # bucket means of 1..n are increasing and within the range
    assert all(1 <= v <= 1000 for v in cols["loss"]) and cols["loss"] == sorted(cols["loss"])
    assert math.isclose(cols["loss"][0], (1 + h.width) / 2)


def test_holdout_split_is_fixed_and_disjoint():
    tr, te = holdout_split(100, 0.1)
    _tr2, te2 = holdout_split(100, 0.1)
    assert torch.equal(te, te2) and len(te) == 10 and len(tr) == 90
    assert not set(tr.tolist()) & set(te.tolist())


def test_trainer_trains_on_the_training_split_only(ring8):
    t = _trainer(ring8)
    assert t.x.shape[0] == len(ring8) - len(ring8) // 10


def test_vae_learns_on_digits(digits):
    """A few hundred steps must lower the loss a lot: catches a broken gradient or sign."""
    t = make_trainer("vae", digits, {}, TrainConfig(batch_size=128, seed=0))
    first = t.step()["loss"]
    for _ in range(150):
        last = t.step()
    assert last["loss"] < 0.7 * first


def test_thread_tuner_keeps_the_faster_setting(monkeypatch):
    from playground import trainer as T

    calls = []
    monkeypatch.setattr(T.torch, "set_num_threads", calls.append)
    tuner = T.ThreadTuner(2, period=10.0, trial=1.0)
    speed = {2: 50, 1: 150}  # steps per second: a busy machine where 1 thread wins
    t = 0.0
    for steps in range(1, 2001):
        n = calls[-1] if calls else 2
        t += 1.0 / speed[n]
        tuner.update(t, steps)
    assert tuner.rates[2] == pytest.approx(50, rel=0.05) and tuner.rates[1] == pytest.approx(150, rel=0.05)
    assert tuner.current == 1 and calls[:3] == [2, 1, 1]
    # after the hold it measures again, the held setting first
    assert calls[3:5] == [1, 2]


def test_slow_previews_are_drawn_from_a_copy_and_leave_training_mode(ring8):
    from playground.trainer import TrainConfig, make_trainer

    t = make_trainer("diffusion", ring8, {"timesteps": 100, "hidden": 16}, TrainConfig(batch_size=32, n_fixed=20))
    t.step()
    a = t.progress_samples()
    assert a.shape == (20, 2) and t.model.training
    t.model.eval()
    torch.testing.assert_close(a, t.model.decode(t.fixed_z, steps=50))  # the 50-step preview chain
