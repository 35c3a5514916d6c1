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
    from ui import CSS, build_demo

    ui.common.CHECKPOINT_ROOT = tmp_path_factory.mktemp("checkpoints")
    demo = build_demo(max_trainings=2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.queue(default_concurrency_limit=None).launch(
        server_port=port, prevent_thread_lock=True, quiet=True, enable_monitoring=False, css=CSS
    )
    yield f"http://127.0.0.1:{port}/"
    demo.close()
