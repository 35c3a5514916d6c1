"""The Inspect tab through gradio_client: the panels for a GAN, a VAE, a flow and a diffusion
model, the Learn panel in step-by-step mode, checkpoints, and a lesson that trains until it is
stopped."""

import time

import pytest
from gradio_client import Client

GAN = dict(upload=None, hidden=32)  # a GAN on ring8 (the Train tab's defaults), small nets
VAE = dict(upload=None, family="vae", data="digits", hidden=32, latent_dim=4)
SESSION = "__session__"
# what /inspect_render returns: the components among its outputs, in order
STATUS, PLANE, HIST, SCORES, MODES, KL, VAE_NOTE, RECON_CURVE, KL_CURVE, RECON, LATENT, LEARN = range(12)
CURVE, READOUT, CURVE_CAPTION, DENSITY, REVERSE, REVERSE_CAPTION, FORWARD, FORWARD_CAPTION = range(12, 20)
GAN_AND_VAE = (PLANE, HIST, SCORES, MODES, KL, VAE_NOTE, RECON_CURVE, KL_CURVE, RECON, LATENT)
FLOW = dict(upload=None, family="flow", data="moons", hidden=32, blocks=4)
DIFFUSION = dict(upload=None, family="diffusion", data="ring8", hidden=32, timesteps=100)


def client(url):
    return Client(url, download_files=False, verbose=False)


def skipped(x) -> bool:
    return isinstance(x, dict) and x.get("__type__") == "update" and len(x) == 1


def frame(plot) -> dict:
    """A plot's data, whether it came back as a value or as an update holding one."""
    return plot.get("value", plot)


def series(plot) -> set:
    return {row[2] for row in frame(plot)["data"]}


def wait_for(predicate, timeout=60.0, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_an_empty_session_says_what_to_do(app_url):
    out = client(app_url).predict(SESSION, api_name="/inspect_render")
    assert "No model to inspect yet" in out[STATUS] and "start a lesson" in out[STATUS]
    with pytest.raises(Exception, match="no model to step yet"):
        client(app_url).predict(SESSION, api_name="/inspect_d_step")


def test_gan_panels_and_the_learn_panel_step_by_step(app_url):
    c = client(app_url)
    c.predict(**GAN, api_name="/dg_step")  # the Train tab's D+G step: 2 steps
    out = c.predict(SESSION, api_name="/inspect_render")
    assert "a GAN on `ring8`" in out[STATUS] and "step **2**" in out[STATUS]
    assert out[PLANE]["path"].endswith(".jpeg") and out[HIST]["path"].endswith(".png")
    assert series(out[SCORES]) == {"D(x)", "D(G(z))", "equilibrium ½"}
    assert "of 8 modes" in out[MODES] and "VEEGAN/PacGAN protocol" in out[MODES]
    assert all(skipped(out[i]) for i in (KL, VAE_NOTE, RECON_CURVE, KL_CURVE, RECON, LATENT))  # the VAE panels wait
    learn = out[LEARN]
    assert r"\min_G \max_D" in learn and r"\mathbb{E}_x[\log D(x)]" in learn
    assert "just ran" in next(line for line in learn.splitlines() if "G step" in line)

    out = c.predict(SESSION, api_name="/inspect_d_step")  # one D step, here
    assert "step **3**" in out[STATUS]
    d_line = next(line for line in out[LEARN].splitlines() if "D step" in line)
    assert "▶" in d_line and "just ran" in d_line

    again = c.predict(SESSION, api_name="/inspect_refresh")  # the timer's tick: nothing new, nothing sent
    assert all(skipped(x) for x in again)


def test_vae_panels(app_url):
    c = client(app_url)
    for _ in range(2):
        c.predict(**VAE, api_name="/step")
    out = c.predict(SESSION, api_name="/inspect_refresh")  # first tick after a change draws everything
    assert "a VAE on `digits`" in out[STATUS]
    assert [row[0] for row in frame(out[KL])["data"]] == ["z0", "z1", "z2", "z3"]
    assert "latent dimensions carry information" in out[VAE_NOTE] and "too early" in out[VAE_NOTE].lower()
    assert series(out[RECON_CURVE]) == {"reconstruction"} and series(out[KL_CURVE]) == {"KL"}
    assert out[RECON]["path"].endswith(".png") and out[LATENT]["path"].endswith(".png")
    assert r"\mathcal{L}(\theta,\phi)" in out[LEARN] and "nats per image" in out[LEARN]
    assert all(skipped(out[i]) for i in (PLANE, HIST, SCORES, MODES))
    with pytest.raises(Exception, match="D and G steps are for GANs"):
        c.predict(SESSION, api_name="/inspect_g_step")


def test_sample_quality_and_memorisation_on_demand(app_url, monkeypatch):
    from playground import quality

    monkeypatch.setattr(quality, "FEATURE_STEPS", 40)  # the app runs in this process
    c = client(app_url)
    with pytest.raises(Exception, match="No model yet"):
        c.predict(SESSION, api_name="/inspect_quality")
    c.predict(**VAE, api_name="/step")
    text, picture = c.predict(SESSION, api_name="/inspect_quality")
    assert "**KID**" in text and "held-out real pictures" in text and "Memorisation" in text and "Distances" in text
    assert frame(picture)["path"].endswith(".png")
    c.predict(**GAN, api_name="/step")  # points: no picture to measure
    with pytest.raises(Exception, match="measured on pictures"):
        c.predict(SESSION, api_name="/inspect_quality")


def test_flow_panels(app_url):
    c = client(app_url)
    for _ in range(2):
        c.predict(**FLOW, api_name="/step")
    out = c.predict(SESSION, api_name="/inspect_render")
    assert "a flow on `moons`" in out[STATUS] and "step **2**" in out[STATUS]
    assert series(out[CURVE]) == {"NLL (nats per point)", "entropy floor (best possible)"}
    assert "nats per point" in out[CURVE]["title"]
    assert "Held-out NLL" in out[READOUT] and "floor 2.390" in out[READOUT] and "gap" in out[READOUT]
    assert out[DENSITY]["path"].endswith(".jpeg")  # the learned density, on 2-D data
    assert out[REVERSE]["path"].endswith(".png") and out[FORWARD]["path"].endswith(".png")
    assert "block by block" in out[REVERSE_CAPTION] and "base Gaussian" in out[FORWARD_CAPTION]
    assert "Change of variables" in out[LEARN] and r"\log \left|\det" in out[LEARN]
    assert all(skipped(out[i]) for i in GAN_AND_VAE)  # the GAN and VAE panels wait
    with pytest.raises(Exception, match="D and G steps are for GANs; a flow trains in one step"):
        c.predict(SESSION, api_name="/inspect_d_step")
    out = c.predict(SESSION, api_name="/inspect_whole_step")
    assert "step **3**" in out[STATUS] and "Held-out NLL" in out[READOUT]


def test_diffusion_panels(app_url):
    c = client(app_url)
    c.predict(**DIFFUSION, api_name="/step")
    out = c.predict(SESSION, api_name="/inspect_refresh")  # the timer's first tick after a change
    assert "a diffusion model (DDPM) on `ring8`" in out[STATUS]
    assert series(out[CURVE]) == {"all t", "low noise (t ≤ T/3)", "middle", "high noise (t > 2T/3)"}
    assert out[READOUT] == "" and skipped(out[DENSITY])  # no likelihood, no density
    assert out[REVERSE]["path"].endswith(".png") and out[FORWARD]["path"].endswith(".png")
    assert "denoising" in out[REVERSE_CAPTION] and "noising" in out[FORWARD_CAPTION]
    assert r"q(x_t \mid x_0)" in out[LEARN] and "T = 100" in out[LEARN]
    assert all(skipped(out[i]) for i in GAN_AND_VAE)
    assert all(skipped(x) for x in c.predict(SESSION, api_name="/inspect_refresh"))  # nothing new


def test_a_checkpoint_can_be_inspected(app_url, shipped_models):
    c = client(app_url)
    out = c.predict(shipped_models["gan"], api_name="/inspect_render")
    assert "Inspecting **gan-test**" in out[STATUS] and "step **20**" in out[STATUS]
    assert out[PLANE] is not None and "estimated on a fresh batch" in out[LEARN]
    out = c.predict(shipped_models["vae"], api_name="/inspect_render")
    assert "a VAE on `digits`" in out[STATUS] and out[LATENT] is not None
    with pytest.raises(Exception, match="not one of the models you can inspect"):
        c.predict("/etc/passwd", api_name="/inspect_render")


def step_of(status: str) -> int:
    return int(status.split("step **")[1].split("**")[0].replace(",", ""))


@pytest.mark.parametrize("stop", ["/stop", "/inspect_stop"])
def test_a_lesson_trains_until_stopped(app_url, stop):
    c = client(app_url)
    job = c.submit(api_name="/lesson_mode_collapse")
    wait_for(lambda: len(job.outputs()) >= 3, what="the lesson's progress")
    first = job.outputs()[0][0]
    assert "Mode collapse" in first and "minimax" in first and "Training" in first
    out = c.predict(SESSION, api_name="/inspect_render")
    assert "a GAN on `grid25`" in out[STATUS] and "training" in out[STATUS]
    assert "of 25 modes" in out[MODES]
    s1 = step_of(out[STATUS])
    wait_for(lambda: step_of(c.predict(SESSION, api_name="/inspect_render")[STATUS]) > s1, what="training steps")
    c.predict(api_name=stop)  # the Train tab's Stop, or the Inspect tab's own
    wait_for(job.done, timeout=30, what="the lesson to end")
    assert "Stopped" in job.outputs()[-1][0]
    stopped = c.predict(SESSION, api_name="/inspect_render")
    assert "idle" in stopped[STATUS]
    time.sleep(0.5)
    assert step_of(c.predict(SESSION, api_name="/inspect_render")[STATUS]) == step_of(stopped[STATUS])


@pytest.mark.parametrize("key,shows", [("flow_couplings", "a flow on `checkerboard`"), ("diffusion_steps", "a diffusion model (DDPM) on `ring8`")])
def test_the_later_families_lessons_train_their_model(app_url, key, shows):
    c = client(app_url)
    job = c.submit(api_name=f"/lesson_{key}")
    wait_for(lambda: len(job.outputs()) >= 2, what="the lesson's progress")
    out = c.predict(SESSION, api_name="/inspect_render")
    assert shows in out[STATUS]
    c.predict(api_name="/inspect_stop")
    wait_for(job.done, timeout=30, what="the lesson to end")
    assert "Stopped" in job.outputs()[-1][0]
