"""The checkpoints shipped in checkpoints/: they load offline, and checkpoints/README.md lists
each with the command that made it."""

from pathlib import Path

import pytest
import torch

from playground.checkpoint import load_model
from playground.explore import Explorer, card_from_checkpoint
from playground.sampling import sample

ROOT = Path(__file__).resolve().parent.parent / "checkpoints"
SHIPPED = sorted(ROOT.glob("*.safetensors"))


def test_the_issue_s_models_are_shipped():
    names = {p.stem for p in SHIPPED}
    assert {"vae-digits-2d", "vae-digits-16d", "vae-shapes", "gan-digits", "gan-ring8"} <= names
    assert {"flow-moons", "made-digits", "ddpm-ring8"} <= names  # one of each later family
    assert {"cvae-digits", "gan-emoji-32"} <= names  # a conditional model, and one in colour


def test_the_colour_model_draws_in_colour():
    model, _meta = load_model(ROOT / "gan-emoji-32.safetensors")
    x = sample(model, 16, seed=0)
    assert x.shape[1:] == (3, 32, 32)
    assert float((x[:, 0] - x[:, 2]).abs().mean()) > 0.05  # red and blue differ: not grey


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_checkpoint_loads_samples_and_is_documented(path):
    assert path.stat().st_size < 5 * 1024 * 1024  # a few MB at most
    model, _meta = load_model(path)
    x = sample(model, 8, seed=0)
    assert torch.isfinite(x).all() and tuple(x.shape[1:]) == tuple(model.config.data_shape)
    readme = (ROOT / "README.md").read_text()
    assert f"`{path.name}`" in readme and "python -m playground train" in readme
    card = card_from_checkpoint(path)
    assert card.data is not None  # its data ships too (or is generated): explorable offline
    Explorer(card)


def test_explore_opens_on_the_2d_vae_and_lists_every_family_with_its_latent_size(monkeypatch):
    import ui.common
    from playground.explore import list_checkpoints
    from ui.explore_tab import first_shipped

    monkeypatch.setattr(ui.common, "CHECKPOINT_ROOT", ROOT)
    assert first_shipped().endswith("vae-digits-2d.safetensors")  # not the first by name
    labels = [label for label, _ in list_checkpoints(ROOT)]
    assert any(label.startswith("made-digits (autoregressive on digits, 256-D latent") for label in labels)
    assert not any("?-D" in label for label in labels)
