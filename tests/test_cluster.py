"""Training on a Ray cluster (playground/cluster.py), against a local cluster the test starts:
two simulated nodes on this machine (ray.cluster_utils.Cluster)."""

import os
import signal
import time

import pytest
import torch

pytest.importorskip("ray", reason="requirements-dev.txt installs Ray")
from ray.cluster_utils import Cluster as RayCluster

from playground.cluster import Cluster, ClusterError, RemoteRunner
from playground.runs import Runner, TrainingPool
from playground.trainer import TrainConfig, make_trainer


@pytest.fixture(scope="module")
def lab():
    """A head and one worker node, one CPU each, small object stores; the app's Cluster on it."""
    nodes = RayCluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 80 * 2**20})
    worker = nodes.add_node(num_cpus=1, object_store_memory=80 * 2**20)
    nodes.wait_for_nodes()
    cluster = Cluster(nodes.address)
    cluster.connect()
    yield nodes, worker, cluster
    cluster.shutdown()
    nodes.shutdown()


def _trainer(data, seed=0):
    return make_trainer("gan", data, {"hidden": 32}, TrainConfig(batch_size=32, seed=seed, device="cpu", adapt_threads=False))


def _wait(run, timeout=120.0):
    assert run.wait(timeout), "the run did not end in time"


def test_a_run_trains_on_the_cluster_with_the_numbers_it_has_here(lab, ring8):
    """Seeded: 30 steps on the cluster, then 10 more on the cluster after a pause in the front,
    give the weights, optimizer state and curves of 40 steps here."""
    _, _, cluster = lab
    pool = TrainingPool(2, cluster=cluster)
    mirror = _trainer(ring8)
    run = pool.start(mirror, lease=None, steps=30)
    _wait(run)
    assert run.error is None and mirror.step_count == 30 and run.latest.done
    run = pool.start(mirror, lease=None, steps=10)  # goes on where it stopped: data order, latents
    _wait(run)
    assert run.error is None and mirror.step_count == 40

    here = _trainer(ring8)
    torch.set_num_threads(1)  # the actor's threads: the same sums in the same order
    try:
        for _ in range(40):
            here.step()
    finally:
        torch.set_num_threads(torch.get_num_threads())
    for (name, p), q in zip(mirror.model.named_parameters(), here.model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)
    assert mirror.last["d_loss"] == pytest.approx(here.last["d_loss"], rel=1e-4)
    assert len(mirror.history.columns()["d_loss"]) == len(here.history.columns()["d_loss"])


def test_pause_resume_and_a_live_lr_reach_the_actor(lab, ring8):
    _, _, cluster = lab
    pool = TrainingPool(2, cluster=cluster)
    mirror = _trainer(ring8, seed=3)
    run = pool.start(mirror, lease=None)
    run.wait_stepped(60)
    mirror.set(lr=1e-3)
    mirror.pause()
    time.sleep(1.0)
    paused_at = mirror.step_count
    time.sleep(1.0)
    assert mirror.step_count == paused_at and run.latest.paused  # nothing stepped while paused
    mirror.resume()
    deadline = time.monotonic() + 30
    while mirror.step_count == paused_at and time.monotonic() < deadline:
        time.sleep(0.1)
    run.stop()
    _wait(run)
    assert mirror.step_count > paused_at and run.error is None
    assert all(g["lr"] == 1e-3 for o in mirror.opts.values() for g in o.param_groups)  # came back with the state


def test_a_hand_step_during_a_cluster_run_ends_the_run_first(lab, ring8):
    """Step in the Train tab while a run trains on the cluster: the run ends and its weights come
    back, then the hand step applies on top of them (not lost under the next poll)."""
    from playground.session import Session

    _, _, cluster = lab
    session = Session(pool=TrainingPool(2, cluster=cluster))
    session.trainer = _trainer(ring8, seed=9)
    run = session.start(session.trainer, lease=None)
    run.wait_stepped(60)
    t = session.step_by_hand()
    assert run.done and run.error is None and t.remote is None
    assert t.step_count == run.latest.step + 1


def test_a_worker_killed_mid_run_leaves_a_message_and_the_last_weights(lab, ring8):
    _, _, cluster = lab
    pool = TrainingPool(2, cluster=cluster)
    mirror = _trainer(ring8, seed=5)
    run = pool.start(mirror, lease=None)
    deadline = time.monotonic() + 60
    while mirror.step_count < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(run.worker_pid, signal.SIGKILL)  # the worker process, as a machine switched off
    _wait(run, 60)
    assert isinstance(run.error, ClusterError)
    assert "went away" in str(run.error) and f"step {mirror.step_count}" in str(run.error)
    assert mirror.step_count >= 20 and not mirror.running and mirror.remote is None
    assert all(torch.isfinite(p).all() for p in mirror.model.parameters())
    mirror.step()  # the model goes on here
    assert mirror.step_count >= 21


def test_a_run_beyond_the_labs_cpus_waits_for_one(lab, ring8):
    """Two CPUs, three runs: the third waits (no error, no false 'went away') and trains once a
    CPU is free."""
    _, _, cluster = lab
    pool = TrainingPool(3, cluster=cluster)
    runs = [pool.start(_trainer(ring8, seed), lease=None) for seed in (11, 12)]
    for run in runs:
        run.wait_stepped(60)
    third = pool.start(_trainer(ring8, 13), lease=None)
    time.sleep(3)
    assert third.waiting and not third.done and third.error is None
    runs[0].stop()
    third.wait_stepped(60)
    assert third.trainer.step_count > 0 and third.error is None
    for run in (runs[1], third):
        run.stop()
        _wait(run)


def test_the_app_trains_on_the_cluster_and_saves_its_weights(lab, tmp_path):
    """Through the app (gradio_client): Train streams pictures of a run on the cluster, Stop
    ends it, and Save writes the weights that came back."""
    import socket

    from gradio_client import Client

    import ui.common
    from playground.checkpoint import load_model
    from ui import build_demo

    _, _, cluster = lab
    ui.common.CHECKPOINT_ROOT = tmp_path
    demo = build_demo(max_trainings=2, cluster=cluster)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.queue(default_concurrency_limit=None).launch(server_port=port, prevent_thread_lock=True, quiet=True, enable_monitoring=False)
    try:
        c = Client(f"http://127.0.0.1:{port}/", download_files=False, verbose=False)
        job = c.submit(upload=None, hidden=32, api_name="/train")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("training" in o[0] and "step **0**" not in o[0] for o in job.outputs()):
            time.sleep(0.2)
        c.predict(api_name="/stop")
        job.result(timeout=30)
        status = job.outputs()[-1][0]
        assert status.startswith("**stopped**"), status
        step = int(status.split("step **")[1].split("**")[0].replace(",", ""))
        assert step > 0
        _, said = c.predict("from-the-cluster", False, api_name="/save")
        assert "saved from-the-cluster.safetensors" in said
        (path,) = (tmp_path / "sessions").glob("*/from-the-cluster.safetensors")
        _, meta = load_model(path)
        assert meta["step"] == step  # the weights that came back from the cluster
        assert any(isinstance(r, RemoteRunner) for r in list(demo.pool._runs))  # it trained there
    finally:
        demo.close()


def test_the_front_survives_a_lost_cluster(lab, ring8):
    """Last: it takes the cluster down. Runs on it end with a message; the front's next run
    trains here."""
    nodes, _, cluster = lab
    pool = TrainingPool(2, cluster=cluster)
    mirror = _trainer(ring8, seed=7)
    run = pool.start(mirror, lease=None)
    run.wait_stepped(60)
    nodes.shutdown()
    _wait(run, 90)
    assert isinstance(run.error, ClusterError) and mirror.step_count > 0
    local = pool.start(mirror, lease=None, steps=3)
    assert isinstance(local, Runner)  # the cluster is gone: this server trains it
    _wait(local, 60)
    assert local.error is None and local.note and "cluster" in local.note


@pytest.mark.parametrize(("address", "says"), [
    ("127.0.0.1:1", r"no Ray head answers at 127\.0\.0\.1:1 \(nothing listens there\): start one there with `ray start --head --port 1`"),
    ("my-laptop", r"HOST:PORT of its head \(e\.g\. 192\.168\.1\.10:6379\) or auto; got 'my-laptop'"),
])  # fmt: skip
def test_a_wrong_address_is_refused_before_ray_is_asked(address, says):
    """Ray retries a wrong address for about 20 s and then says little: the head's port is
    tried first, and the message says what to do."""
    cluster = Cluster(address)
    with pytest.raises(ClusterError, match=says):
        cluster.connect()
    assert cluster._bridge is None  # no bridge process, no Ray driver started
