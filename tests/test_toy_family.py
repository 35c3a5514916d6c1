"""A family added from this file alone (README, "Adding a model family"): a Gaussian mixture
fitted by gradient descent, registered with one call and driven through the trainer, the CLI
and the app's three tabs. Nothing outside playground/models/ knows its name."""

from __future__ import annotations

import json
import math
import socket
from dataclasses import asdict, dataclass
from typing import ClassVar

import pytest
import torch
from gradio_client import Client
from torch import nn

from playground.models import FAMILIES, ConfigError, descend, live_settings, make_adam, register, setting, validate


@dataclass
class MixtureConfig:
    data_shape: tuple[int, ...] = (2,)
    components: int = setting(8, "Mixture components", lo=1, hi=64, step=1, row="size")
    lr: float = setting(0.05, "Learning rate", lo=1e-4, hi=1.0, live=True, row="training")

    def __post_init__(self):
        self.data_shape = tuple(int(s) for s in self.data_shape)
        validate(self)

    def to_dict(self) -> dict:
        return asdict(self)


class Mixture(nn.Module):
    """p(x) = sum_k pi_k N(x; mu_k, diag(sigma_k^2)). The latent is (u, e): u picks the
    component through the normal CDF, e ~ N(0, I) places the point in it."""

    family: ClassVar[str] = "toy_mixture"
    label: ClassVar[str] = "Mixture"
    a_model: ClassVar[str] = "a Gaussian mixture"
    Config: ClassVar[type] = MixtureConfig
    defaults: ClassVar[dict] = {"points": {}}
    data_kinds: ClassVar[tuple[str, ...]] = ("points",)
    phases: ClassVar[tuple[str, ...]] = ()
    live_params: ClassVar[tuple[str, ...]] = live_settings(MixtureConfig)
    sample_params: ClassVar[tuple[str, ...]] = ()
    curves: ClassVar[tuple] = (("Negative log-likelihood", ("nll",)), ("Spread", ("mean_sigma",)))
    series: ClassVar[dict] = {"nll": "NLL", "mean_sigma": "mean σ"}

    def __init__(self, cfg: MixtureConfig):
        super().__init__()
        self.config = cfg
        g = torch.Generator().manual_seed(0)
        self.logits = nn.Parameter(torch.zeros(cfg.components))
        self.mu = nn.Parameter(torch.randn(cfg.components, 2, generator=g))
        self.log_sigma = nn.Parameter(torch.zeros(cfg.components, 2))

    latent_dim = 3

    def log_prob(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        z = (x[:, None, :] - self.mu) * torch.exp(-self.log_sigma)
        comp = (-0.5 * z.pow(2) - self.log_sigma - 0.5 * math.log(2 * math.pi)).sum(-1)
        return torch.logsumexp(torch.log_softmax(self.logits, 0) + comp, dim=1)

    def loss_parts(self, x, generator=None):
        nll = -self.log_prob(x).mean()
        return {"loss": nll, "nll": nll, "mean_sigma": self.log_sigma.exp().mean().detach()}

    def make_optimizers(self):
        return {"mix": make_adam(self.parameters(), self.config.lr, (0.9, 0.999))}

    def train_step(self, next_batch, opts, *, batch_size: int = 0, step: int = 0, phase=None, generator=None):
        if phase is not None:
            raise ConfigError(f"a mixture trains in one step; phase {phase!r} is for GANs")
        return descend(self.loss_parts(next_batch(), generator), opts["mix"])

    def sample_latent(self, n: int, generator=None) -> torch.Tensor:
        return torch.randn(n, 3, generator=generator)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        u = 0.5 * (1 + torch.erf(z[:, 0] / math.sqrt(2)))
        k = torch.searchsorted(torch.softmax(self.logits, 0).cumsum(0), u.contiguous()).clamp(max=len(self.logits) - 1)
        return self.mu[k] + self.log_sigma[k].exp() * z[:, 1:]


@pytest.fixture(scope="module")
def toy():
    register(Mixture)
    yield Mixture
    del FAMILIES["toy_mixture"]


def test_the_trainer_fits_it(toy, ring8):
    from playground.trainer import TrainConfig, make_trainer

    t = make_trainer("toy_mixture", ring8, {"components": 8}, TrainConfig(batch_size=256, seed=0))
    first = t.step()["nll"]
    for _ in range(300):
        last = t.step()["nll"]
    assert last < first - 1.0  # eight Gaussians on a ring: the fit gains well over a nat
    t.set(lr=0.01)
    assert t.opts["mix"].param_groups[0]["lr"] == 0.01
    with pytest.raises(ConfigError, match="components must be an integer from 1 to 64"):
        make_trainer("toy_mixture", ring8, {"components": 100}, TrainConfig())


def test_the_cli_trains_samples_evaluates_and_lists_it(toy, tmp_path, capsys):
    from playground.cli import main

    assert main(["train", "--model", "toy_mixture", "--data", "ring8", "--steps", "30", "--out", str(tmp_path), "--set", "components=4"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["steps"] == 30 and "nll" in result["final"]
    ckpt = tmp_path / "model.safetensors"
    assert main(["sample", str(ckpt), "--n", "50", "--out", str(tmp_path / "s.npy")]) == 0
    assert main(["evaluate", str(ckpt)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["family"] == "toy_mixture"
    assert main(["settings", "--model", "toy_mixture"]) == 0
    assert "components     Mixture components: an integer from 1 to 64, default 8" in capsys.readouterr().out


@pytest.fixture(scope="module")
def toy_url(toy, tmp_path_factory):
    import ui.common
    from ui import PAGE, build_demo

    before, ui.common.CHECKPOINT_ROOT = ui.common.CHECKPOINT_ROOT, tmp_path_factory.mktemp("toy-checkpoints")
    demo = build_demo()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.queue(default_concurrency_limit=None).launch(server_port=port, prevent_thread_lock=True, quiet=True, enable_monitoring=False, **PAGE)
    yield f"http://127.0.0.1:{port}/"
    demo.close()
    ui.common.CHECKPOINT_ROOT = before


def test_the_three_tabs_show_it(toy_url):
    c = Client(toy_url, download_files=False, verbose=False)
    info = c.view_api(return_format="dict")["named_endpoints"]["/step"]["parameters"]
    assert "components" in [p["parameter_name"] for p in info]  # the Train tab made its control
    status = c.predict(family="toy_mixture", data="ring8", upload=None, components=4, lr=0.05, api_name="/step")[0]
    assert "step **1**" in status and "NLL" in status
    for _ in range(3):
        status = c.predict(family="toy_mixture", data="ring8", upload=None, components=4, lr=0.05, api_name="/step")[0]
    assert "step **4**" in status
    info, view = c.predict("__session__", api_name="/explore_pick")[:2]
    assert "a Gaussian mixture" in info and "3-D latent" in info and view is not None
    from playground.explore import N_DIRECTIONS, N_SLIDERS

    moved = c.predict(*([2.0, 1.0, -1.0] + [0.0] * (N_SLIDERS + N_DIRECTIONS - 3)), api_name="/decode")
    assert moved is not None
    out = json.dumps(c.predict("__session__", api_name="/inspect_render"))
    assert "a Gaussian mixture" in out
    assert "Mixture: its objective" in out and "| NLL |" in out  # the Learn panel, from its loss parts
    assert "The training objective" in out  # its curve, captioned as any family's
