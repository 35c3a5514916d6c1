"""The app through gradio_client against a real server: streaming, controls, sessions, errors."""

import time
from pathlib import Path

import gradio as gr
import pytest
from gradio_client import Client

import ui.common


@pytest.fixture(scope="module")
def url(app_url):
    return app_url


def client(url):
    return Client(url, download_files=False, verbose=False)


GAN = dict(upload=None, hidden=32)  # small nets: the tests check behaviour, not quality
VAE = dict(upload=None, family="vae", data="moons", likelihood="gaussian", hidden=32, lr=1e-3)


def step_of(status: str) -> int:
    return int(status.split("step **")[1].split("**")[0].replace(",", ""))


def updates(job, n, timeout=60):
    """The first n streamed outputs of a job (waiting for them)."""
    end = time.time() + timeout
    while len(job.outputs()) < n and time.time() < end:
        time.sleep(0.05)
    return job.outputs()[:n]


def last_status(outs) -> str:
    """The status as last sent (a frame re-sends only what changed)."""
    return [o[0] for o in outs if isinstance(o[0], str)][-1]


def curve_series(job, timeout=30) -> set[str]:
    """The series of the first curve, as last sent by a training's stream (its frames carry only
    what changed: the curves' data alone, a whole LinePlot update, or nothing, and the curves
    about once a second), waiting for a frame that has them."""
    end = time.time() + timeout
    while True:
        plots = [o[2].get("value", o[2]) for o in job.outputs() if isinstance(o[2], dict)]
        plots = [p for p in plots if isinstance(p, dict) and p.get("data")]
        if plots or time.time() > end:
            return {r[2] for r in plots[-1]["data"]} if plots else set()
        time.sleep(0.1)


def test_train_streams_increasing_steps_then_stops(url):
    c = client(url)
    job = c.submit(**GAN, api_name="/train")
    outs = updates(job, 4)
    assert len(outs) == 4
    steps = [step_of(o[0]) for o in outs]
    assert steps == sorted(steps) and steps[-1] > steps[0]
    assert outs[0][1] is not None  # the picture of generated points
    assert {"D loss", "G loss"} <= curve_series(job)
    c.predict(api_name="/stop")
    end = time.time() + 20
    while not job.done() and time.time() < end:
        time.sleep(0.05)
    assert job.done() and "stopped" in job.outputs()[-1][0]


def test_pause_and_resume(url):
    c = client(url)
    job = c.submit(**GAN, api_name="/train")
    updates(job, 2)
    assert "paused" in c.predict(api_name="/pause")
    time.sleep(0.8)
    n = len(job.outputs())
    first = last_status(job.outputs())
    later = last_status(updates(job, n + 2))  # while paused, frames re-send nothing
    assert "paused" in first and later == first
    c.predict(api_name="/resume")
    resumed = last_status(updates(job, n + 6))
    assert step_of(resumed) > step_of(first)
    c.predict(api_name="/stop")


def test_step_buttons_walk_through_the_gan_procedure(url):
    c = client(url)
    s1 = c.predict(**GAN, api_name="/d_step")[0]
    assert "D step done" in s1 and step_of(s1) == 1
    s2 = c.predict(**GAN, api_name="/g_step")[0]
    assert step_of(s2) == 2
    s3 = c.predict(**GAN, api_name="/dg_step")[0]
    assert step_of(s3) == 4  # a D step and a G step
    with pytest.raises(Exception, match="D and G steps are for GANs"):
        c.predict(**VAE, api_name="/d_step")


def test_two_sessions_train_their_own_models_at_once(url):
    a, b = client(url), client(url)
    ja = a.submit(**GAN, api_name="/train")
    jb = b.submit(**VAE, api_name="/train")
    oa, ob = updates(ja, 3)[-1], updates(jb, 3)[-1]
    assert "D(x)" in oa[0] and "KL" not in oa[0]
    assert "KL" in ob[0] and "D(x)" not in ob[0]
    assert {"reconstruction", "KL"} <= curve_series(jb)
    # both ran concurrently: each stream kept advancing while the other was live
    assert step_of(updates(ja, 4)[-1][0]) > 0 and step_of(updates(jb, 4)[-1][0]) > 0
    a.predict(api_name="/stop")
    b.predict(api_name="/stop")
    # a third session has no model at all
    assert "No model yet" in client(url).predict(api_name="/reset")[0]


def test_bad_input_is_refused_and_the_model_survives(url, tmp_path):
    from gradio_client import handle_file

    c = client(url)
    s = c.predict(**GAN, api_name="/step")[0]
    assert step_of(s) == 1
    with pytest.raises(Exception, match="lr must be a number from 1e-06 to 1.0; got 5"):
        c.predict(**{**GAN, "lr": 5.0}, api_name="/step")
    with pytest.raises(Exception, match="less than minimum value 1"):
        c.predict(**{**GAN, "pack": 0}, api_name="/step")
    with pytest.raises(Exception, match="latent_dim must be a whole number"):
        c.predict(**{**GAN, "latent_dim": 2.5}, api_name="/step")
    with pytest.raises(Exception, match="ring9 is not in the list of choices"):
        c.predict(**{**GAN, "data": "ring9"}, api_name="/step")
    bad = tmp_path / "points.csv"
    bad.write_text("x,y\n1,2\nthree,4\n")
    with pytest.raises(Exception, match="line 3"):
        c.predict(**{**GAN, "data": "upload", "upload": handle_file(str(bad))}, api_name="/step")
    with pytest.raises(Exception, match="choose a file to upload first"):
        c.predict(**{**GAN, "data": "upload"}, api_name="/step")
    # the model trained before the bad inputs is still there and continues
    assert step_of(c.predict(**GAN, api_name="/step")[0]) == 2


def test_save_then_load_continues_training(url):
    from gradio_client import handle_file

    c = client(url)
    c.predict(**GAN, api_name="/dg_step")
    path, status = c.predict("run-1", False, api_name="/save")
    assert "saved run-1.safetensors" in status
    path = Path(path if isinstance(path, str) else path["path"])  # the download's copy
    kept = list((ui.common.CHECKPOINT_ROOT / "sessions").glob("*/run-1.safetensors"))
    assert path.exists() and len(kept) == 1  # kept in this session's own folder on the server
    other = client(url)
    out = other.predict(handle_file(str(path)), api_name="/load")
    assert "loaded" in out[0] and step_of(out[0]) == 2
    assert step_of(other.predict(**GAN, api_name="/step")[0]) == 3  # continued, not restarted
    with pytest.raises(Exception, match="never opens them|not a"):
        bad = path.with_name("evil.safetensors")
        bad.write_bytes(b"\x80\x04K\x01.")
        other.predict(handle_file(str(bad)), api_name="/load")


def test_train_continues_a_model_whose_hidden_settings_differ(url):
    """A loaded checkpoint or a lesson may set what the tab does not show (here g_layers):
    Train must continue that model, not start afresh."""
    from gradio_client import handle_file

    from playground.checkpoint import save_checkpoint
    from playground.data import load_data
    from playground.trainer import TrainConfig, make_trainer

    data_args = {"spec": "ring8", "seed": 0, "image_size": 28, "channels": 1}
    t = make_trainer("gan", load_data(**data_args), {"hidden": 32, "g_layers": 2}, TrainConfig(), data_args=data_args)
    t.step()
    path = save_checkpoint(ui.common.CHECKPOINT_ROOT / "two-layers.safetensors", t)
    c = client(url)
    c.predict(handle_file(str(path)), api_name="/load")
    assert step_of(c.predict(**GAN, api_name="/step")[0]) == 2


def test_live_settings_reach_the_running_model(train_tab):
    """lr, beta, sampling steps and eta change the session's model in place (no new model)."""
    from playground.session import Session, TrainSettings

    assert train_tab.live_fields == ("lr", "beta", "sample_steps", "eta")
    s = Session()
    t, _ = s.prepare(TrainSettings(family="diffusion", data="ring8", model={"timesteps": 100, "hidden": 16}))
    train_tab.on_live(s, 2e-3, 1.0, 40.0, 0.0)  # beta is not a diffusion setting: ignored
    assert t.model.config.sample_steps == 40 and isinstance(t.model.config.sample_steps, int)
    assert t.model.config.eta == 0.0 and t.opts["eps"].param_groups[0]["lr"] == 2e-3
    assert s.prepare(TrainSettings(family="diffusion", data="ring8", model={"timesteps": 100, "hidden": 16, "sample_steps": 40, "eta": 0.0, "lr": 2e-3}))[0] is t
    with pytest.raises(Exception, match="sample_steps must be"):
        train_tab.on_live(s, 2e-3, 1.0, 5000.0, 0.0)
    assert t.model.config.sample_steps == 40  # a bad value leaves the model as it was


@pytest.fixture(scope="module")
def train_tab():
    from ui import build_demo

    return build_demo().train_tab


def test_live_pictures_of_slow_models_are_throttled_and_curves_keep_their_colours(train_tab):
    from playground.models import GAN, Flow
    from playground.session import Session, TrainSettings
    from ui.train_tab import series_colors

    s = Session()
    t, _ = s.prepare(TrainSettings(family="diffusion", data="ring8", model={"timesteps": 100, "hidden": 16}))
    view = {"canvas": None}
    first = train_tab.picture(t, view, training=True)
    assert train_tab.picture(t, view, training=True) is first  # within 4x its drawing time: reused
    assert train_tab.picture(t, view, training=True, live=True) == gr.skip()  # in a stream: not re-sent
    assert train_tab.picture(t, view, training=False) is not first  # a step by hand: always fresh
    assert series_colors(("nll",), Flow.series, floor=True) == {"NLL": "#1f77b4", "entropy floor (best possible)": "#888888"}
    assert list(series_colors(("d_loss", "g_loss"), GAN.series)) == ["D loss", "G loss"]


def test_a_crowded_streams_first_picture_after_the_run_stepped_is_drawn_at_once(train_tab):
    """In a class of 30 a stream's pictures come 4.5 s apart; the picture drawn before the run
    stepped must not hold back the first one after it (the student sees their run start then)."""
    from playground.session import Session, TrainSettings

    s = Session()
    t, _ = s.prepare(TrainSettings(family="gan", data="ring8", model={"hidden": 16}))
    view = train_tab.view(s)
    before = train_tab.picture(t, view, training=True, live=True, gap=60.0)
    assert isinstance(before, str) and train_tab.picture(t, view, training=True, live=True, gap=60.0) == gr.skip()
    t.step()
    first = train_tab.picture(t, view, training=True, live=True, gap=60.0)
    assert isinstance(first, str) and view["pic_step"] == 1
    t.step()
    assert train_tab.picture(t, view, training=True, live=True, gap=60.0) == gr.skip()  # then one a gap


def test_a_run_that_steps_while_its_first_frame_is_drawn_is_shown_again_at_once(monkeypatch):
    """A crowded stream waits `crowding` times longer between frames once it has shown a step;
    a run whose first step came while the first frame (of step 0) was being drawn has not shown
    one yet, and its next frame must come at once, not a crowded gap later (an hour here)."""
    import threading

    import ui.streaming as streaming
    from playground.session import Session, TrainSettings

    monkeypatch.setattr(streaming, "MAX_GAP", 3600.0)
    s = Session()
    monkeypatch.setattr(s.pool, "crowding", lambda: 1e6)
    t, _ = s.prepare(TrainSettings(family="gan", data="ring8", model={"hidden": 16}))
    t.pause()
    runner = s.start(t, lease=None)
    shown = []

    def frame(state, rate):
        if not shown:  # the run takes its first step while this frame (of step 0) is drawn
            t.resume()
            runner.wait_stepped(30)
        shown.append(min(t.step_count, 1))
        return state

    frames = streaming.stream(s, runner, 0.01, frame)
    second = threading.Thread(target=lambda: (next(frames), next(frames)), daemon=True)
    second.start()
    second.join(60)
    drawn = len(shown)  # before the run stops (which ends any wait)
    runner.stop()
    assert drawn == 2, "the stepped run's frame waited a crowded gap"


def test_a_streams_frames_send_only_what_changed(train_tab, monkeypatch):
    """Each output a stream re-sends costs the server's event loop, which every user's requests
    wait for: a live frame skips what has not changed, sends its picture as a PNG it encoded
    itself, and its curves as data alone once the plot has its title and colours."""
    import pandas as pd

    import ui.train_tab as tt
    from playground.session import Session, TrainSettings

    s = Session()
    t, _ = s.prepare(TrainSettings(family="gan", data="ring8", model={"hidden": 16}))
    t.step()
    view = train_tab.view(s)
    monkeypatch.setattr(tt, "CURVES_EVERY", 0.0)  # as often as the steps change
    status, pic, c1, c2 = train_tab.frame(s, view, "paused", 0.0, live=True)
    assert "paused" in status and isinstance(pic, str) and pic.endswith(".png") and Path(pic).is_file()
    assert isinstance(c1, gr.LinePlot) and isinstance(c2, gr.LinePlot)
    assert train_tab.frame(s, view, "paused", 0.0, live=True) == (gr.skip(),) * 4  # nothing changed
    t.step()
    status, pic, c1, c2 = train_tab.frame(s, view, "paused", 0.0, live=True)
    assert "step **2**" in status and isinstance(pic, str)  # (the plots rebuild once on new series)
    t.step()
    status, pic, c1, c2 = train_tab.frame(s, view, "paused", 0.0, live=True)
    assert "step **3**" in status and isinstance(c1, pd.DataFrame) and isinstance(c2, pd.DataFrame)
    full = train_tab.frame(s, view, "stopped", 0.0)  # a stream's last frame: everything, as it is
    assert "stopped" in full[0] and not isinstance(full[1], dict) and isinstance(full[2], gr.LinePlot)


def test_plot_series_rebuilds_a_chart_once_new_series_have_been_sent():
    """Gradio's LinePlot rebuilds on a colour-map change, reading the update before: the map
    must change on the update after the one that brought new series, and then stay put."""
    import pandas as pd

    from ui.common import PlotSeries

    def frame(*names):
        return pd.DataFrame({"step": [1] * len(names), "value": [0.0] * len(names), "series": list(names)})

    p, colors = PlotSeries(), {"a": "#000"}
    maps = [p.color_map(f, colors) for f in (frame("a"), frame("a"), frame("a"), frame("b"), frame("b"), frame("b"))]
    changed = [i for i in range(1, 6) if maps[i] != maps[i - 1]]
    assert changed == [1, 4]  # after the first data, and after the first update with "b"
    assert all(v == "#000" for k, v in maps[-1].items() if k == "a")


def test_a_family_shows_its_own_declared_controls(train_tab):
    """Picking a family or data shows the family's controls as its config declares them (label,
    range, choices), hides the others', and makes a choice that has one option on the data."""
    from playground.models import settings_for

    def shown(family, data):
        out = train_tab.on_family_or_data(family, data, None)  # {component: update}
        knobs = {k: out[train_tab.c[k]] for k in train_tab.knobs}
        rows = {r: out[train_tab.knob_rows[r]] for r in train_tab.rows}
        return {k: u for k, u in knobs.items() if u.get("visible")}, knobs, rows

    vis, knobs, rows = shown("gan", "ring8")
    assert "arch" not in vis and knobs["arch"]["value"] == "mlp"  # an MLP is the one choice on points
    assert not rows["arch"]["visible"] and rows["training"]["visible"]
    assert set(vis) == {k for k, s in settings_for("gan").items() if s.shown} - {"arch", "augment"}  # one choice each on points
    vis, _, rows = shown("gan", "digits")
    assert vis["arch"]["choices"] == ["mlp", "dcgan"] and rows["arch"]["visible"]
    assert vis["latent_dim"]["value"] == 32  # the images' default
    vis, knobs, _ = shown("diffusion", "digits")
    hidden = settings_for("diffusion")["hidden"]
    assert (vis["hidden"]["maximum"], vis["hidden"]["minimum"], vis["hidden"]["info"]) == (hidden.hi, hidden.lo, hidden.help)
    assert "latent_dim" not in vis and "beta" not in vis
    vis, knobs, _ = shown("vae", "moons")
    assert "likelihood" not in vis and knobs["likelihood"]["value"] == "gaussian"
    assert vis["hidden"]["info"] == ""  # another family's help is cleared
    assert vis["beta"]["label"] == "β (KL weight; live)"
    vis, _, _ = shown("vae", "digits")
    assert vis["likelihood"]["choices"] == ["bernoulli", "logistic", "gaussian"] and vis["likelihood"]["value"] == "bernoulli"
    vis, _, _ = shown("vae", "emoji")  # colour pictures: a conv net and the likelihood of 8-bit colour
    assert (vis["arch"]["value"], vis["likelihood"]["value"]) == ("conv", "logistic")
    out = train_tab.on_family_or_data("vae", "emoji", None)
    assert out[train_tab.c["colour"]]["visible"] and out[train_tab.c["image_size"]]["visible"]
    assert not train_tab.on_family_or_data("vae", "moons", None)[train_tab.c["colour"]]["visible"]


def test_the_colour_control_follows_the_data_and_sets_the_defaults(train_tab):
    from playground.session import TrainSettings

    c = train_tab.c
    grey = train_tab.on_family_or_data("vae", "emoji", None, "grey")  # grey emoji: the grey defaults
    assert grey[c["likelihood"]]["value"] == "bernoulli" and grey[c["arch"]]["value"] == "mlp"
    picked = train_tab.on_data("gan", "glyphs", None)  # other data: its own colours and side
    assert picked[c["colour"]]["value"] == "auto" and picked[c["image_size"]]["value"] == 32 and picked[c["arch"]]["value"] == "dcgan"
    assert "value" not in train_tab.on_data("gan", "digits", None)[c["image_size"]]  # grey sets keep the side
    # the batch is the family's own for the data: a colour GAN's 64, grey pictures' 128
    assert picked[c["batch_size"]]["value"] == 64 and train_tab.on_data("gan", "digits", None)[c["batch_size"]]["value"] == 128
    assert train_tab.on_family_or_data("gan", "glyphs", None, "grey")[c["batch_size"]]["value"] == 128
    # a checkpoint saved with channels 1 (every one before colour) shows "as the data" on grey data
    shown = train_tab.settings_updates(TrainSettings(family="vae", data="digits", channels=1))
    assert shown[c["colour"]]["value"] == "auto"
    shown = train_tab.settings_updates(TrainSettings(family="vae", data="emoji", channels=1))
    assert shown[c["colour"]]["value"] == "grey"


def test_colour_data_trains_in_colour_and_grey_on_request(url):
    import numpy as np
    from PIL import Image

    c = client(url)
    colour = dict(upload=None, family="vae", data="emoji", image_size=16, arch="conv", likelihood="logistic", batch_size=16)
    status, picture = c.predict(**colour, api_name="/step")[:2]
    assert step_of(status) == 1 and "bits/dim" in status
    rgb = np.asarray(Image.open(picture["path"]).convert("RGB")).astype(int)
    assert (np.abs(rgb[..., 0] - rgb[..., 2]) > 8).mean() > 0.05  # colour pixels on the page
    status, picture = c.predict(**colour, colour="grey", api_name="/step")[:2]
    assert step_of(status) == 1  # a new model: grey data is other data
    rgb = np.asarray(Image.open(picture["path"]).convert("RGB")).astype(int)
    assert (rgb[..., 0] == rgb[..., 2]).all()


@pytest.mark.parametrize("family,data", [("gan", "ring8"), ("vae", "digits"), ("flow", "moons"), ("autoregressive", "digits"), ("diffusion", "digits")])
def test_every_control_refuses_a_bad_value_saying_what_is_allowed(url, family, data):
    """Each setting a family shows, sent out of its range (or outside its choices, or empty, as
    only an API caller can), is refused with a message naming what is allowed; the server stays
    up and the model survives."""
    from playground.models import settings_for

    c = client(url)
    base = dict(upload=None, family=family, data=data, hidden=32)
    assert step_of(c.predict(**base, api_name="/step")[0]) == 1
    for k, s in settings_for(family).items():
        if not s.shown or k == "hidden":
            continue
        if s.choices:
            bad, allowed = "nonsense", "not in the list of choices"
        elif s.kind is bool:
            bad, allowed = "yes", f"{k} must be true or false"
        else:
            bad = s.hi + 1 if s.kind is int else s.hi * 1.5 + 0.5  # just past what this family allows
            allowed = rf"{k} must be an? (integer|number) from {s.lo} to {s.hi}|greater than maximum value {s.hi}"
        with pytest.raises(Exception, match=allowed):
            c.predict(**{**base, k: bad}, api_name="/step")
        if s.widget == "slider":  # only an API caller can send a slider nothing
            with pytest.raises(Exception, match="Expected a `float`"):
                c.predict(**{**base, k: None}, api_name="/step")
    assert step_of(c.predict(**base, api_name="/step")[0]) == 2  # the same model, stepped on


def test_the_api_takes_every_choice_and_range_some_family_allows(url):
    """Controls shared by families take the widest declaration: a VAE's conv architecture or a
    diffusion model's 6 residual blocks are not refused for being outside another family's."""
    c = client(url)
    status = c.predict(upload=None, family="vae", data="digits", arch="conv", hidden=32, api_name="/step")[0]
    assert step_of(status) == 1
    status = c.predict(upload=None, family="diffusion", data="ring8", layers=6, hidden=16, timesteps=100, api_name="/step")[0]
    assert step_of(status) == 1


def test_a_link_to_the_tabs_settings(url):
    from urllib.parse import parse_qsl

    c = client(url)
    query = c.predict(upload=None, family="vae", data="digits", latent_dim=2, beta=4, likelihood="bernoulli", arch="mlp", api_name="/link")
    params = dict(parse_qsl(query))
    assert params["family"] == "vae" and params["data"] == "digits" and params["latent_dim"] == "2" and float(params["beta"]) == 4
    with pytest.raises(Exception, match="choose a file to upload first"):
        c.predict(upload=None, data="upload", api_name="/link")


def test_a_link_cannot_name_a_users_file(url, tmp_path):
    from gradio_client import handle_file

    points = tmp_path / "mine.csv"
    points.write_text("x,y\n" + "\n".join(f"{i},{i % 3}" for i in range(20)))
    with pytest.raises(Exception, match="only name a builtin data set"):
        client(url).predict(upload=handle_file(str(points)), data="upload", api_name="/link")


def test_outputs_left_alone_cost_nothing_and_the_rest_go_through_gradio():
    """ui.common.Blocks: a gr.skip() goes out as Gradio sends it, without the component and its
    config Gradio would build anew for the session (13 ms for an Image); a value beside it, a
    dict of some outputs, and a change of properties are Gradio's own."""
    import asyncio

    import numpy as np
    from gradio.state_holder import SessionState

    with ui.common.Blocks() as demo:
        md, img, slider, state = gr.Markdown(), gr.Image(type="numpy", format="png"), gr.Slider(0, 1), gr.State(0)
        outputs = [md, img, slider, state]
        btn = gr.Button()
        btn.click(lambda: None, None, outputs, api_name="f")
        btn.click(lambda: None, None, img, api_name="one")
    fns = {fn.api_name: fn for fn in demo.fns.values()}
    session = SessionState(demo)

    def post(fn, predictions):
        return asyncio.run(demo.postprocess_data(fns[fn], predictions, session))

    def copies():  # the components this session holds a copy of, in place of the app's own
        return {b._id for b in outputs[:3] if session.blocks_config.blocks[b._id] is not b}

    assert post("f", (gr.skip(), gr.skip(), gr.skip(), gr.skip())) == [{"__type__": "update"}] * 3 + [None]
    assert post("f", gr.skip()) == [{"__type__": "update"}] * 3 + [None]
    assert post("one", gr.skip()) == [{"__type__": "update"}]
    assert copies() == set()
    out = post("f", ("**hi**", gr.skip(), gr.skip(), 7))
    assert out[0] == "**hi**" and out[1:3] == [{"__type__": "update"}] * 2 and session[state._id] == 7
    out = post("f", {img: np.zeros((4, 4, 3), np.uint8)})  # a dict: the outputs it leaves out are skipped
    assert out[0] == out[2] == {"__type__": "update"} and out[1]["path"].endswith(".png") and out[3] is None
    assert copies() == set()
    out = post("f", (gr.skip(), gr.skip(), gr.Slider(visible=False), gr.skip()))  # a property changes: Gradio's way
    assert out[2] == {"__type__": "update", "visible": False} and copies() == {slider._id}
    with pytest.raises(ValueError, match="didn't return enough output values"):
        post("f", ("a", "b"))



def test_a_session_keeps_no_copy_of_the_page_config():
    """ui.common.Blocks' server makes sessions without Gradio's copy of every component's config
    and of every value sent (written, never read: 570 KB a session before any value); they
    answer as Gradio's own do, and have the attributes Gradio's own have."""
    import asyncio

    import numpy as np
    from gradio.state_holder import SessionState

    from ui.common import LeanSession, LeanStateHolder

    with ui.common.Blocks() as demo:
        md, img, slider, state = gr.Markdown(), gr.Image(type="numpy", format="png"), gr.Slider(0, 1), gr.State(0)
        btn = gr.Button()
        btn.click(lambda: None, None, [md, img, slider, state], api_name="f")
    gr.routes.App.create_app(demo)  # as launch() and mount_gradio_app() do
    assert isinstance(demo.state_holder, LeanStateHolder)
    lean, gradios = demo.state_holder["abc"], SessionState(demo)
    assert isinstance(lean, LeanSession) and demo.state_holder["abc"] is lean
    assert set(vars(lean)) == set(vars(gradios))
    fn = next(iter(demo.fns.values()))
    sent = ("**hi**", np.zeros((4, 4, 3), np.uint8), gr.Slider(visible=False), 7)
    outs = [asyncio.run(demo.postprocess_data(fn, sent, s)) for s in (lean, gradios)]
    assert outs[0] == outs[1] and outs[0][2] == {"__type__": "update", "visible": False}
    assert lean[state._id] == gradios[state._id] == 7
    assert len(dict(gradios.config_values)) > 4 and dict(lean.config_values) == {}
    assert lean.blocks_config.blocks[slider._id] is not slider  # the session's own copy of what changed, as Gradio keeps

def test_a_float_number_box_nudges_its_value_instead_of_stepping_by_one():
    """A learning rate's box stepped by Gradio's default 1: one arrow press took 0.0005 to 1."""
    from ui.train_tab import controls, make_control, nudge

    lr = make_control(controls()["lr"], 0.0005, visible=True)
    assert lr.step == pytest.approx(1e-5) and round(0.0005 / lr.step, 9).is_integer()  # valid for the browser
    assert nudge(2e-4) == pytest.approx(1e-5) and nudge(0.1) == pytest.approx(0.01) and nudge(0.0) == 0.01
    assert make_control(controls()["kl_warmup"], 0, visible=True).step == 1  # a whole number steps by one


def test_an_image_side_the_tab_does_not_offer_trains_and_a_wrong_one_says_what_is_allowed(url):
    """A link may name any side from 8 to 64 (the tab offers four): the side box takes it. Before,
    Gradio refused 20 at Train as "not in the list of choices"."""
    c = client(url)
    base = dict(upload=None, family="vae", data="digits", hidden=32, batch_size=16)
    status = c.predict(**base, image_size=20, api_name="/step")[0]
    assert step_of(status) == 1
    with pytest.raises(Exception, match="image size must be a whole number; got 'big'"):
        c.predict(**base, image_size="big", api_name="/step")
    with pytest.raises(Exception, match="image_size must be an integer from 8 to 64, got 100"):
        c.predict(**base, image_size=100, api_name="/step")


def test_a_users_mistake_is_shown_to_them_and_not_logged_as_a_traceback(url, capfd):
    """The server's log keeps tracebacks for bugs: a class's typing mistakes buried them."""
    c = client(url)
    capfd.readouterr()
    with pytest.raises(Exception, match="lr must be a number from"):
        c.predict(upload=None, family="gan", data="ring8", lr=5.0, api_name="/step")
    time.sleep(0.5)
    assert "Traceback" not in capfd.readouterr().err
