"""Every command-line entry point with a tiny step count, and its error exits."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from playground.cli import main


def _run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_train_sample_evaluate_points(tmp_path, capsys):
    code, out, _ = _run(["train", "--model", "gan", "--data", "ring8", "--steps", "20", "--out", str(tmp_path), "--set", "pack=2", "hidden=32"], capsys)
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert result["steps"] == 20 and result["steps_per_sec"] > 0
    assert result["mode_coverage"]["n_modes"] == 8 and "protocol" in result["mode_coverage"]
    ckpt = tmp_path / "model.safetensors"
    assert ckpt.exists() and (tmp_path / "samples.png").exists()

    code, out, _ = _run(["sample", str(ckpt), "--n", "100", "--out", str(tmp_path / "s.npy")], capsys)
    assert code == 0 and np.load(tmp_path / "s.npy").shape == (100, 2)
    code, out, _ = _run(["sample", str(ckpt), "--n", "100", "--out", str(tmp_path / "s.png")], capsys)
    assert code == 0 and Image.open(tmp_path / "s.png").size[0] > 100

    code, out, _ = _run(["evaluate", str(ckpt)], capsys)
    r = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and r["step"] == 20 and r["mode_coverage"]["n_modes"] == 8
    code, out, _ = _run(["evaluate", str(ckpt), "--data", "grid25"], capsys)
    assert code == 0 and json.loads(out)["mode_coverage"]["n_modes"] == 25


def test_colour_data_trains_in_colour_unless_grey_is_asked_for(tmp_path, capsys):
    from playground.checkpoint import read_checkpoint

    out = tmp_path / "colour"
    code, text, _ = _run(["train", "--model", "vae", "--data", "emoji", "--image-size", "16", "--steps", "3", "--batch-size", "16", "--out", str(out)], capsys)
    assert code == 0
    cfg = read_checkpoint(out / "model.safetensors")[0]["model_config"]
    assert cfg["data_shape"] == [3, 16, 16] and cfg["likelihood"] == "logistic"
    assert json.loads(text.strip().splitlines()[-1])["held_out"]["bits_per_dim"] > 0
    samples = np.asarray(Image.open(out / "samples.png").convert("RGB")).astype(int)
    assert (samples[..., 0] != samples[..., 2]).mean() > 0.1  # colour pixels, not grey
    code, _, _ = _run(["sample", str(out / "model.safetensors"), "--n", "4", "--out", str(tmp_path / "s.npy")], capsys)
    assert code == 0 and np.load(tmp_path / "s.npy").shape == (4, 3, 16, 16)

    grey = tmp_path / "grey"
    code, _, _ = _run(["train", "--model", "vae", "--data", "emoji", "--image-size", "16", "--channels", "1", "--steps", "2", "--batch-size", "16", "--out", str(grey)], capsys)
    cfg = read_checkpoint(grey / "model.safetensors")[0]["model_config"]
    assert code == 0 and cfg["data_shape"] == [1, 16, 16] and cfg["likelihood"] == "bernoulli"


def test_train_vae_on_digits_for_seconds(tmp_path, capsys):
    code, out, _ = _run(["train", "--model", "vae", "--data", "digits", "--seconds", "0.5", "--out", str(tmp_path), "--set", "latent_dim=2"], capsys)
    assert code == 0
    r = json.loads(out.strip().splitlines()[-1])
    assert r["steps"] > 0 and r["held_out"]["latent_dim"] == 2 and "log_likelihood" in r["held_out"]
    code, _, _ = _run(["sample", str(tmp_path / "model.safetensors"), "--n", "16", "--out", str(tmp_path / "g.png")], capsys)
    assert code == 0
    img = np.asarray(Image.open(tmp_path / "g.png"))
    assert img.ndim == 3 and img.shape[0] >= 4 * 28


def test_flow_on_moons_reports_nll_against_the_entropy_floor(tmp_path, capsys):
    code, out, _ = _run(["train", "--model", "flow", "--data", "moons", "--n", "3000", "--steps", "30", "--out", str(tmp_path), "--set", "blocks=2", "hidden=16"], capsys)
    assert code == 0
    held = json.loads(out.strip().splitlines()[-1])["held_out"]
    assert held["n_examples"] == 300  # --n points drawn, a tenth held out
    assert held["entropy_floor"] == pytest.approx(2.390) and held["gap_to_floor"] == pytest.approx(held["nll"] - 2.390)
    code, out, _ = _run(["evaluate", str(tmp_path / "model.safetensors")], capsys)
    assert code == 0 and json.loads(out)["held_out"]["nll"] == pytest.approx(held["nll"], abs=1e-4)


def test_made_on_digits_reports_bits_per_dim(tmp_path, capsys):
    code, out, _ = _run(["train", "--model", "autoregressive", "--data", "digits", "--image-size", "8", "--steps", "5", "--out", str(tmp_path), "--set", "hidden=16"], capsys)
    assert code == 0
    held = json.loads(out.strip().splitlines()[-1])["held_out"]
    assert held["bits_per_dim"] == pytest.approx(held["nll"] / (64 * np.log(2)), rel=1e-5)
    code, _, _ = _run(["sample", str(tmp_path / "model.safetensors"), "--n", "4", "--out", str(tmp_path / "s.npy")], capsys)
    x = np.load(tmp_path / "s.npy")
    assert code == 0 and x.shape == (4, 1, 8, 8) and set(np.unique(x)) <= {0.0, 1.0}


def test_diffusion_sampling_steps_change_at_sample_time(tmp_path, capsys):
    code, out, _ = _run(["train", "--model", "diffusion", "--data", "ring8", "--steps", "5", "--out", str(tmp_path), "--set", "timesteps=100", "hidden=16"], capsys)
    r = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and r["mode_coverage"]["n_modes"] == 8 and "loss" in r["final"]
    ckpt = str(tmp_path / "model.safetensors")
    outs = {}
    for steps in (100, 10):
        code, _, _ = _run(["sample", ckpt, "--n", "8", "--out", str(tmp_path / f"s{steps}.npy"), "--set", f"sample_steps={steps}", "eta=0"], capsys)
        assert code == 0
        outs[steps] = np.load(tmp_path / f"s{steps}.npy")
    assert not np.allclose(outs[100], outs[10])
    code, _, err = _run(["sample", ckpt, "--n", "8", "--out", str(tmp_path / "bad.npy"), "--set", "sample_steps=5000"], capsys)
    assert code == 1 and "sample_steps must be" in err
    code, _, err = _run(["sample", ckpt, "--n", "8", "--out", str(tmp_path / "bad.npy"), "--set", "lr=1"], capsys)
    assert code == 1 and "allowed: sample_steps, eta" in err


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["train", "--model", "gan", "--data", "ring8", "--out", "x"],  # no budget
        ["train", "--model", "nosuch", "--data", "ring8", "--steps", "1", "--out", "x"],
        ["train", "--model", "gan", "--data", "ring8", "--steps", "0", "--out", "x"],
        ["train", "--model", "gan", "--data", "ring8", "--steps", "1", "--out", "x", "--set", "noequals"],
        ["sample", "ckpt.safetensors", "--out", "x.jpg"],
    ],
)
def test_bad_arguments_exit_2_with_usage(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    assert "usage:" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "--model", "gan", "--data", "ring9", "--steps", "1", "--out", "{tmp}"], "ring8"),
        (["train", "--model", "gan", "--data", "ring8", "--steps", "1", "--out", "{tmp}", "--set", "loss=hinge"], "loss must be one of"),
        (["sample", "{tmp}/none.safetensors", "--out", "{tmp}/x.png"], "no such checkpoint"),
        (["evaluate", "{tmp}/none.safetensors"], "no such checkpoint"),
    ],
)
def test_bad_data_or_checkpoint_exit_1_without_traceback(tmp_path, capsys, args, message):
    code, out, err = _run([a.replace("{tmp}", str(tmp_path)) for a in args], capsys)
    assert code == 1 and message in err and "Traceback" not in err and out == ""


def test_python_dash_m_entry_point(tmp_path):
    """The real `python -m playground` process: exit code and JSON last line."""
    proc = subprocess.run(
        [sys.executable, "-m", "playground", "train", "--model", "vae", "--data", "moons", "--steps", "5", "--out", str(tmp_path)],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["steps"] == 5
    bad = subprocess.run([sys.executable, "-m", "playground", "evaluate", str(tmp_path / "nope.safetensors")], check=False, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr


def test_settings_lists_what_set_takes_from_the_declarations(capsys):
    from playground.models import settings_for

    code, out, _ = _run(["settings", "--model", "diffusion"], capsys)
    assert code == 0
    listed = [line.split()[0] for line in out.splitlines()[1:] if line.strip()]
    assert listed == list(settings_for("diffusion"))  # every declared setting, in order
    assert "sample_steps" in out and "an integer from 0 to 1000, default 250; may change live, at sample time" in out
    assert "hidden" in out and "default 256 (1024 on images)" in out  # the images' default beside it
    code, out, _ = _run(["settings"], capsys)
    assert code == 0 and all(f"{f} (" in out for f in ("gan", "vae", "flow", "autoregressive", "diffusion"))
