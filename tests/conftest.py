import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def ring8():
    from playground.data import load_data

    return load_data("ring8", n=2000, seed=0)


@pytest.fixture(scope="session")
def digits():
    from playground.data import load_data

    return load_data("digits", image_size=28)


@pytest.fixture(scope="session")
def app_url(tmp_path_factory):
    """The app served on a free localhost port for the whole test session (two trainings may
    run at once), with checkpoints in a temporary folder."""
    import socket

    import ui.common
    from ui import PAGE, build_demo

    ui.common.CHECKPOINT_ROOT = tmp_path_factory.mktemp("checkpoints")
    demo = build_demo(max_trainings=2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.queue(default_concurrency_limit=None).launch(
        server_port=port, prevent_thread_lock=True, quiet=True, enable_monitoring=False, **PAGE, show_error=True
    )
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="session")
def shipped_models(app_url, digits, ring8):
    """Two small checkpoints in the app's checkpoint folder, as shipped models would be."""
    import ui.common
    from playground.checkpoint import save_checkpoint
    from playground.trainer import TrainConfig, make_trainer

    root = ui.common.CHECKPOINT_ROOT
    vae = make_trainer("vae", digits, {"latent_dim": 2, "hidden": 64}, TrainConfig(batch_size=64), data_args={"spec": "digits"})
    gan = make_trainer("gan", ring8, {"hidden": 32}, TrainConfig(batch_size=64), data_args={"spec": "ring8"})
    for t in (vae, gan):
        for _ in range(20):
            t.step()
    return {
        "vae": str(save_checkpoint(root / "vae2-test.safetensors", vae, optimizer=False)),
        "gan": str(save_checkpoint(root / "gan-test.safetensors", gan, optimizer=False)),
    }
