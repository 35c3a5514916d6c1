"""The GPU path (--device cuda). Skipped on machines without CUDA, which is most of them."""

import json

import pytest
import torch

from playground.checkpoint import load_model, load_trainer, save_checkpoint
from playground.cli import main
from playground.sampling import sample
from playground.trainer import TrainConfig, make_trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("family,over", [("gan", {}), ("gan", {"arch": "dcgan", "pack": 2, "r1": 1.0, "spectral_norm": True}), ("vae", {"arch": "conv"})])
def test_training_on_cuda_and_back_to_cpu(tmp_path, digits, family, over):
    t = make_trainer(family, digits, over, TrainConfig(batch_size=32, device="cuda"))
    assert next(t.model.parameters()).is_cuda
    for _ in range(3):
        t.step()
    list(t.run(steps=5, report_every=0))
    assert t.progress_samples().device.type == "cpu"
    path = save_checkpoint(tmp_path / "m.safetensors", t)
    model, _ = load_model(path)  # on the CPU
    # cuDNN convolutions use TF32 on recent GPUs: equal to a few thousandths
    torch.testing.assert_close(sample(model, 4, seed=1), sample(t.model, 4, seed=1), rtol=0, atol=5e-3)
    resumed = load_trainer(path, device="cuda")
    resumed.step()


def test_cli_device_cuda(tmp_path, capsys):
    assert main(["train", "--model", "vae", "--data", "digits", "--steps", "50", "--device", "cuda", "--out", str(tmp_path)]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["steps"] == 50 and "held_out" in r
