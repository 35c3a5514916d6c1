"""The app's per-user logic without Gradio: continue vs new model, bad settings, curves."""

import pytest

from playground.data import DataError
from playground.models import ConfigError
from playground.session import MAX_CURVE_POINTS, Session, TrainSettings, curve_frames, safe_name, status_text

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
    assert a.host == "127.0.0.1" and a.port == 7860 and a.auth is None and not a.open
    assert app.parse_args(["--auth", "t:secret", "--max-trainings", "4"]).auth == "t:secret"
    for bad in (["--auth", "nocolon"], ["--max-trainings", "0"], ["--port", "x"]):
        with pytest.raises(SystemExit) as e:
            app.parse_args(bad)
        assert e.value.code == 2
