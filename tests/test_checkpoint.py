"""Checkpoints round trip, and every kind of bad file is refused with a clear message."""

import json
import pickle
import struct

import pytest
import torch
from safetensors.torch import save_file

from playground.checkpoint import (
    CheckpointError,
    load_model,
    load_trainer,
    read_checkpoint,
    read_metadata,
    save_checkpoint,
)
from playground.sampling import decode, sample
from playground.trainer import TrainConfig, make_trainer


@pytest.fixture(scope="module")
def saved(tmp_path_factory, ring8):
    t = make_trainer("gan", ring8, {"pack": 2, "spectral_norm": True}, TrainConfig(batch_size=64, device="cpu"), data_args={"spec": "ring8", "n": 2000})
    for _ in range(12):
        t.step()
    path = save_checkpoint(tmp_path_factory.mktemp("ck") / "gan.safetensors", t)
    return t, path


def test_round_trip_rebuilds_the_same_model_without_the_trainer(saved):
    t, path = saved
    model, meta = load_model(path)
    assert meta["family"] == "gan" and meta["step"] == 12 and meta["data"] == {"spec": "ring8", "n": 2000}
    assert meta["model_config"]["pack"] == 2
    torch.testing.assert_close(sample(model, 50, seed=3), sample(t.model, 50, seed=3), rtol=0, atol=0)
    assert meta["history"]["rows"][-1]["step"] == 12


def test_continue_training_is_identical_to_never_stopping(saved, ring8):
    t, path = saved
    resumed = load_trainer(path, device="cpu")
    assert resumed.step_count == 12 and len(resumed.history.rows) == len(t.history.rows)
    # the optimizer moments came back too: one more step from both gives the same weights,
    # as long as both draw the same batch and noise
    resumed.generator.set_state(t.generator.get_state())
    resumed._perm, resumed._pos = t._perm.clone(), t._pos
    t.step()
    resumed.step()
    for (k, a), b in zip(t.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)


def test_vae_round_trip(tmp_path, digits):
    t = make_trainer("vae", digits, {"latent_dim": 4}, TrainConfig(batch_size=32))
    t.step()
    model, _meta = load_model(save_checkpoint(tmp_path / "v.safetensors", t))
    z = torch.randn(3, 4)
    torch.testing.assert_close(decode(model, z), decode(t.model, z))


def test_save_is_atomic_and_leaves_no_temp_files(saved, tmp_path):
    t, _ = saved
    path = save_checkpoint(tmp_path / "a.safetensors", t)
    save_checkpoint(path, t)  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors"]
    with pytest.raises(CheckpointError, match="end in .safetensors"):
        save_checkpoint(tmp_path / "a.pt", t)


def test_refuses_pickles(tmp_path):
    p = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, p)  # a zip-based pickle
    with pytest.raises(CheckpointError, match="never opens them"):
        load_model(p)
    p2 = tmp_path / "raw.safetensors"
    p2.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError, match="pickle"):
        load_model(p2)


def test_refuses_truncated_and_forged_files(saved, tmp_path):
    _, path = saved
    data = path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="could not be read|truncated"):
        load_model(cut)
    forged = tmp_path / "forged.safetensors"
    forged.write_bytes(struct.pack("<Q", 10**12) + b"{}")
    with pytest.raises(CheckpointError, match="header claims"):
        load_model(forged)
    tiny = tmp_path / "tiny.safetensors"
    tiny.write_bytes(b"abc")
    with pytest.raises(CheckpointError, match="only 3 bytes"):
        load_model(tiny)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model(tmp_path / "missing.safetensors")

    garbled = tmp_path / "garbled.safetensors"  # starts like a header, but is not JSON
    garbled.write_bytes(struct.pack("<Q", 6) + b"{oops}" + bytes(16))
    with pytest.raises(CheckpointError, match="header is not JSON"):
        load_model(garbled)
    n = struct.unpack("<Q", data[:8])[0]  # a real header, whose tensors lie past the file's end
    short = tmp_path / "short.safetensors"
    short.write_bytes(data[: 8 + n + 16])
    with pytest.raises(CheckpointError, match="could not be read as safetensors"):
        load_model(short)
    assert read_metadata(short)["family"] == "gan"  # the header alone, as Explore's list reads it


def test_reading_checkpoints_leaves_no_objects_behind(saved):
    """Explore lists every checkpoint for each student, and the app reads one at each load:
    reads must not leave Python objects behind (safetensors' safe_open().get_tensor left two a
    tensor, forever, and pinned the memory a class had used)."""
    import gc
    import tracemalloc

    _, path = saved
    for _ in range(3):
        read_checkpoint(path), read_metadata(path)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for _ in range(100):
            read_checkpoint(path), read_metadata(path)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    left = sum(d.count_diff for d in after.compare_to(before, "filename") if "tracemalloc" not in d.traceback[0].filename)
    assert left < 50, f"{left} objects left behind by 100 reads"

def _rewrite(path, out, meta_change=None, tensor_change=None):
    meta, tensors = read_checkpoint(path)
    if meta_change:
        meta_change(meta)
    if tensor_change:
        tensor_change(tensors)
    save_file(tensors, str(out), metadata={"playground": json.dumps(meta)})
    return out


def test_refuses_unknown_family_bad_config_and_wrong_shapes(saved, tmp_path):
    _, path = saved
    f = _rewrite(path, tmp_path / "f.safetensors", lambda m: m.update(family="transformer"))
    with pytest.raises(CheckpointError, match="unknown model family 'transformer'; known: gan, vae"):
        load_model(f)
    c = _rewrite(path, tmp_path / "c.safetensors", lambda m: m["model_config"].update(latent_dim=-3))
    with pytest.raises(CheckpointError, match="config is invalid.*latent_dim"):
        load_model(c)
    key = "model.G.net.0.weight"
    s = _rewrite(path, tmp_path / "s.safetensors", tensor_change=lambda t: t.update({key: torch.zeros(7, 7)}))
    with pytest.raises(CheckpointError, match=r"wrong shape G.net.0.weight \(7, 7\)"):
        load_model(s)
    m = _rewrite(path, tmp_path / "m.safetensors", tensor_change=lambda t: t.pop(key))
    with pytest.raises(CheckpointError, match="missing G.net.0.weight"):
        load_model(m)
    n = _rewrite(path, tmp_path / "n.safetensors", tensor_change=lambda t: t[key].fill_(float("nan")))
    with pytest.raises(CheckpointError, match="NaN"):
        load_model(n)


def test_refuses_safetensors_that_are_not_playground_checkpoints(tmp_path):
    p = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(p))
    with pytest.raises(CheckpointError, match="not a playground checkpoint"):
        load_model(p)
    save_file({"w": torch.zeros(2)}, str(p), metadata={"playground": "{not json"})
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(p)


def test_weights_only_checkpoint_is_smaller_and_still_continues(saved, tmp_path):
    t, full = saved
    small = save_checkpoint(tmp_path / "small.safetensors", t, optimizer=False)
    assert small.stat().st_size < 0.6 * full.stat().st_size
    resumed = load_trainer(small)
    assert resumed.step_count == t.step_count
    resumed.step()  # a fresh optimizer takes over
    assert resumed.step_count == t.step_count + 1


def test_a_header_length_whose_low_byte_looks_like_a_pickle_is_still_read(saved, tmp_path):
    """0x80 is pickle's first byte but also any header length of 128 mod 256."""
    t, _ = saved
    for pad in range(300):  # find a metadata size that puts 0x80 first
        path = tmp_path / "p.safetensors"
        t.data_args = {"spec": "ring8", "n": 2000, "pad": "x" * pad}
        save_checkpoint(path, t)
        if path.read_bytes()[0] == 0x80:
            break
    t.data_args = {"spec": "ring8", "n": 2000}
    assert path.read_bytes()[0] == 0x80
    _model, meta = load_model(path)
    assert meta["family"] == "gan"


@pytest.mark.parametrize(
    "family,spec,over",
    [
        ("flow", "moons", {"blocks": 2, "hidden": 16}),
        ("autoregressive", "digits", {"hidden": 16}),
        ("diffusion", "ring8", {"timesteps": 100, "hidden": 16, "sample_steps": 20}),
    ],
)
def test_later_families_round_trip_and_continue(tmp_path, family, spec, over):
    from playground.data import load_data

    data_args = {"spec": spec, "image_size": 8} if spec == "digits" else {"spec": spec, "n": 500}
    data = load_data(**data_args)
    t = make_trainer(family, data, over, TrainConfig(batch_size=32, device="cpu"), data_args=data_args)
    for _ in range(5):
        t.step()
    path = save_checkpoint(tmp_path / f"{family}.safetensors", t)
    model, meta = load_model(path)
    assert meta["family"] == family and meta["model_config"] == t.model.config.to_dict() | {k: list(v) for k, v in t.model.config.to_dict().items() if isinstance(v, tuple)}
    t.model.eval()
    torch.testing.assert_close(sample(model, 16, seed=1), sample(t.model, 16, seed=1), rtol=0, atol=0)
    if hasattr(model, "log_prob"):  # the averaged flow and the ActNorm statistics came back too
        x = data.x[:16]
        torch.testing.assert_close(model.log_prob(x, torch.Generator().manual_seed(0)), t.model.log_prob(x, torch.Generator().manual_seed(0)))
    resumed = load_trainer(path, device="cpu")
    assert resumed.step_count == 5 and resumed.step()["step"] == 6


def test_a_conv_checkpoint_saved_before_nets_gained_a_stage_still_loads(tmp_path):
    """Conv VAEs and DCGANs at 40-64 px had two stages before the 64 px stage existed: a
    checkpoint without "stages" in its config is rebuilt with two."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    from playground.checkpoint import load_model, save_checkpoint
    from playground.data import load_data
    from playground.trainer import TrainConfig, make_trainer

    data = load_data("digits", n=64, image_size=64)
    old = make_trainer("gan", data, {"arch": "dcgan", "channels": 8, "stages": 2}, TrainConfig(batch_size=16))
    path = save_checkpoint(tmp_path / "old.safetensors", old, optimizer=False)
    with safe_open(str(path), framework="pt") as f:
        meta, tensors = json.loads(f.metadata()["playground"]), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    del meta["model_config"]["stages"]  # as an older version wrote it
    save_file(tensors, str(tmp_path / "legacy.safetensors"), metadata={"playground": json.dumps(meta)})
    model, _ = load_model(tmp_path / "legacy.safetensors")
    assert model.config.stages == 2 and len(model.G.net) == 5
    z = torch.randn(2, model.latent_dim)
    torch.testing.assert_close(model.generate(z), old.model.generate(z))
    fresh = make_trainer("gan", data, {"arch": "dcgan", "channels": 8}, TrainConfig(batch_size=16)).model
    assert fresh.config.stages == 0 and len(fresh.G.net) == 8  # new models at 64 px: three stages
