"""Training on a Ray cluster, for a lab whose one machine is not enough (`app.py --cluster ADDRESS`).

The app (the front) stays one process holding every session and doing the cheap work: pages,
pictures, Explore's decodes, checkpoints. Each run trains in a Ray actor of its own, on whichever
machine of the cluster has a CPU free (`RunActor`, one PyTorch thread). The front keeps the
run's trainer as a mirror: `RemoteRunner` asks the actor for its numbers a few times a second
and copies them in (step, losses, curves, and the weights whenever they moved; the optimizer's
state too when the run ends), so everything the app does with a model works as it does
locally, and a checkpoint saved in the front holds the cluster's latest weights. Pause, resume,
stop and live settings (lr, β) go to the actor through the mirror (`Trainer.remote`).

The app talks to Ray through a bridge process of its own (`_Service`, the Ray driver): Ray ends
a driver whose cluster head has been gone for a minute, and that must be the bridge, not the
app. When something goes wrong, the front stays up:
- a worker dies mid-run (its machine switched off, its process killed): the run ends with a
  message that says so, and the model keeps the last weights that came back (a report old);
- the cluster goes away: the same for every run on it; a Train pressed while it is unreachable
  trains in the front, as without a cluster, and says why.

Why Ray: it schedules actors onto the machines with free CPUs, ships this package to them
(`runtime_env`), reports a dead actor or node as an exception on the next call, and a lab
joins its machines to it with one command each (README: "A lab of machines").
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import socket
import threading
import time
from multiprocessing.managers import BaseManager
from pathlib import Path

import torch

from .runs import LEASE, TrainingPool, Watched, _Either
from .trainer import History, Report, TrainConfig, Trainer

POLL_TIMEOUT = 20.0  # seconds a placed actor may take to answer before its run counts as lost
WEIGHTS_EVERY = 0.5  # seconds between two copies of a run's weights and curves to the app
ORPHAN_AFTER = 60.0  # seconds an actor trains on without the app asking for it (then it stops)


ADDRESS_TIMEOUT = 3.0  # seconds to wait for a head's port to answer before saying the address is wrong


class ClusterError(RuntimeError):
    """A run's machine or the whole cluster went away; the message says what the model kept."""


def _ray():
    try:
        import ray
    except ImportError:  # pragma: no cover - requirements-dev installs it
        raise ClusterError("training on a cluster needs Ray: pip install 'ray[default]'") from None
    return ray


# ---------------------------------------------------------------------------------------------
# The worker's side


class RunActor:
    """One run on a machine of the cluster: a Trainer rebuilt from the front's, trained in a
    thread of its own while the front polls it."""

    def __init__(self, state: dict, run_kwargs: dict):
        from .models import build_model

        torch.set_num_threads(1)  # one run per CPU Ray gave it
        model = build_model(state["family"], state["model_config"])
        model.load_state_dict(state["model"])
        self.trainer = Trainer(model, state["data"], TrainConfig(**{**state["train_config"], "device": "cpu"}), data_args=state["data_args"])
        for key, opt in self.trainer.opts.items():
            if state["opts"].get(key):
                opt.load_state_dict(state["opts"][key])
        self.trainer.generator.set_state(state["generator"])
        self.trainer._perm, self.trainer._pos = state["perm"], state["pos"]
        self.trainer.step_count, self.trainer.elapsed = state["step"], state["elapsed"]
        self.trainer.history = History.from_state(state["history"])
        if state["paused"]:
            self.trainer.pause()
        self.latest = self.trainer.report()
        self.error: str | None = None
        self.done = False
        self._asked = self._sent = time.monotonic()
        self.thread = threading.Thread(target=self._work, args=(run_kwargs,), daemon=True)
        self.thread.start()

    def _work(self, run_kwargs: dict) -> None:
        try:
            for report in self.trainer.run(**run_kwargs):
                self.latest = report
                if time.monotonic() - self._asked > ORPHAN_AFTER:  # the app is gone
                    self.trainer.stop()
        except Exception as e:  # the front shows it (a diverged run says which weights it kept)
            self.error = str(e)
        finally:
            self.done = True

    def ready(self) -> int:
        """Answers once the actor is placed and built (its process id)."""
        return os.getpid()

    def poll(self, since_step: int, full: bool = False) -> dict:
        """The run's numbers; its weights and curves when they moved since `since_step` and
        WEIGHTS_EVERY has passed since the last copy (or `full`), and the optimizer's state and
        data order too when `full`."""
        t = self.trainer
        now = self._asked = time.monotonic()
        with t.lock:
            out = {"report": self.latest, "pid": os.getpid(), "step": t.step_count, "elapsed": t.elapsed,
                   "last": dict(t.last), "error": self.error, "done": self.done}  # fmt: skip
            if full or (t.step_count != since_step and now - self._sent >= WEIGHTS_EVERY):
                self._sent = now
                out["model"] = {k: v.detach().clone() for k, v in t.model.state_dict().items()}
                out["history"] = t.history.state()
            if full:
                out["opts"] = {k: o.state_dict() for k, o in t.opts.items()}
                out["generator"], out["perm"], out["pos"] = t.generator.get_state(), t._perm.clone(), t._pos
        return out

    def pause(self) -> None:
        self.trainer.pause()

    def resume(self) -> None:
        self.trainer.resume()

    def stop(self) -> None:
        self.trainer.stop()

    def set(self, values: dict) -> None:
        self.trainer.set(**values)


def _state_of(trainer: Trainer) -> dict:
    """Everything a RunActor needs to go on exactly where the front's trainer is."""
    with trainer.lock:
        return {
            "family": trainer.model.family,
            "model_config": trainer.model.config.to_dict(),
            "model": {k: v.detach().clone() for k, v in trainer.model.state_dict().items()},
            "opts": {k: o.state_dict() for k, o in trainer.opts.items()},
            "train_config": trainer.config.to_dict(),
            "data": trainer.data,
            "data_args": trainer.data_args,
            "generator": trainer.generator.get_state(),
            "perm": trainer._perm.clone(),
            "pos": trainer._pos,
            "step": trainer.step_count,
            "elapsed": trainer.elapsed,
            "history": trainer.history.state(),
            "paused": trainer.paused,
        }


# ---------------------------------------------------------------------------------------------
# The bridge: the one process of the app that talks to Ray


class _Service:
    """Lives in the bridge process, the Ray driver: Ray ends a driver whose cluster head has gone
    for a minute, and that must not be the app. Everything it returns is pickled bytes or plain
    values, and every failure a ClusterError (Ray's own exceptions need Ray to unpickle)."""

    def __init__(self, address: str, package: str, cpus_per_run: float):
        import ray

        try:
            ray.init(address=address, log_to_driver=False,
                     runtime_env={"py_modules": [package]}, include_dashboard=False)  # fmt: skip
        except Exception as e:
            raise ClusterError(
                f"could not join the Ray cluster at {address}: {_first_line(e)}. Is `ray start` running there, and "
                f"does this machine use the cluster's token (RAY_AUTH_MODE=token, and RAY_AUTH_TOKEN or ~/.ray/auth_token)?"
            ) from None
        self._ray = ray
        self._actor = ray.remote(num_cpus=cpus_per_run, max_restarts=0)(RunActor)
        self._ping = ray.remote(num_cpus=0)(_pong)  # runs even when every CPU trains
        self._runs: dict[int, object] = {}
        self._ready: dict[int, object] = {}  # the placement answers not yet seen
        self._next = 0
        threading.Thread(target=_exit_with, args=(os.getppid(),), daemon=True).start()
        self._lock = threading.Lock()

    def alive(self) -> bool:
        """Whether the cluster runs a task now (its list of nodes can be stale once the head
        is gone; a task needs the head and a live node)."""
        try:
            return bool(self._ray.get(self._ping.remote(), timeout=8.0))
        except Exception:
            return False

    def start(self, blob: bytes, run_kwargs: dict) -> int:
        try:
            actor = self._actor.remote(pickle.loads(blob), run_kwargs)
            ready = actor.ready.remote()
        except Exception as e:
            raise ClusterError(f"the cluster could not start the run: {_first_line(e)}") from None
        with self._lock:
            self._next += 1
            self._runs[self._next] = actor
            self._ready[self._next] = ready
            return self._next

    def placed(self, run: int) -> bool:
        """Whether the run's actor has a CPU and is built (False while it waits for one); a
        ClusterError when building it failed (on a machine without the project's requirements,
        say: that fails again at every Train)."""
        ready = self._ready.get(run)
        if ready is None:
            return True
        done, _ = self._ray.wait([ready], timeout=0)
        if not done:
            return False
        try:
            self._ray.get(ready)
        except Exception as e:
            raise ClusterError(f"the cluster could not build the run on its machine: {_first_line(e)}") from None
        del self._ready[run]
        return True

    def poll(self, run: int, since_step: int, full: bool) -> bytes:
        try:
            out = self._ray.get(self._runs[run].poll.remote(since_step, full), timeout=POLL_TIMEOUT)
        except Exception as e:
            raise ClusterError(_first_line(e)) from None
        return pickle.dumps(out)

    def send(self, run: int, method: str, args: tuple) -> None:
        with contextlib.suppress(Exception):  # a lost actor is reported by the next poll
            getattr(self._runs[run], method).remote(*args)

    def kill(self, run: int) -> None:
        self._ready.pop(run, None)
        actor = self._runs.pop(run, None)
        if actor is not None:
            with contextlib.suppress(Exception):
                self._ray.kill(actor)


def _pong() -> bool:
    return True


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def _exit_with(parent: int) -> None:
    """The bridge ends when the app does (its actors, owned by this driver, end with it)."""
    while os.getppid() == parent:
        time.sleep(2.0)
    os._exit(0)


class _Bridge(BaseManager):
    pass


_Bridge.register("Service", _Service)


class Cluster:
    """The app's connection to a Ray cluster at `address` ("HOST:PORT" of its head, or "auto"),
    through a bridge process (_Service)."""

    def __init__(self, address: str, *, cpus_per_run: float = 1.0):
        self.address = address
        self.cpus_per_run = cpus_per_run
        self._bridge: _Bridge | None = None
        self._service = None
        self._lost = False
        self._answered = 0.0  # when the bridge last answered (time.monotonic())
        self._lock = threading.Lock()

    def connect(self) -> None:
        """Start the bridge and join the cluster (once); a ClusterError saying what failed."""
        with self._lock:
            if self._service is not None:
                return
            _ray()  # a clear message when Ray is not installed
            self._check_address()
            bridge = _Bridge(ctx=multiprocessing.get_context("spawn"))
            bridge.start()
            try:
                self._service = bridge.Service(self.address, str(Path(__file__).resolve().parent), self.cpus_per_run)
            except Exception as e:
                bridge.shutdown()
                raise ClusterError(str(e)) from None
            self._bridge = bridge

    def _check_address(self, timeout: float = ADDRESS_TIMEOUT) -> None:
        """A HOST:PORT nothing answers at fails in seconds with why (Ray itself retries for
        about 20 s, then says little); "auto" and other forms are left to Ray."""
        host, sep, port = self.address.rpartition(":")
        if not sep or not host or not port.isdigit():
            if self.address != "auto" and ":" not in self.address:
                raise ClusterError(f"a cluster's address is HOST:PORT of its head (e.g. 192.168.1.10:6379) or auto; got {self.address!r}")
            return
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
        except OSError as e:
            why = "nothing listens there" if isinstance(e, ConnectionRefusedError) else (e.strerror or type(e).__name__)
            raise ClusterError(
                f"no Ray head answers at {self.address} ({why}): start one there with `ray start --head --port {port}`, "
                "or give the address that `ray start --head` printed"
            ) from None

    def _call(self, method: str, *args):
        """A call to the bridge; a ClusterError when it or the cluster behind it went away."""
        if self._service is None:
            raise ClusterError(f"the cluster at {self.address} is not connected")
        try:
            out = getattr(self._service, method)(*args)
            if method in ("start", "placed", "poll"):  # answers that needed the cluster itself
                self._answered = time.monotonic()
            return out
        except ClusterError:
            self._answered = 0.0
            raise
        except (EOFError, OSError) as e:  # the bridge process ended (Ray ends a driver whose cluster went)
            self._lost, self._answered = True, 0.0
            raise ClusterError(f"the cluster at {self.address} cannot be reached ({type(e).__name__})") from None
        except Exception as e:
            self._answered = 0.0
            raise ClusterError(_first_line(e)) from None

    def alive(self, timeout: float = 10.0) -> bool:
        """Whether the cluster answered in the last few seconds or answers within `timeout` (a
        lost one stays lost: restart the app to join it again once it is back)."""
        if self._service is None or self._lost:
            return False
        if time.monotonic() - self._answered < 5.0:
            return True
        answer: list[bool] = []
        probe = threading.Thread(target=lambda: answer.append(self._try_alive()), daemon=True)
        probe.start()
        probe.join(timeout)
        return bool(answer and answer[0])

    def _try_alive(self) -> bool:
        try:
            ok = bool(self._call("alive"))
        except ClusterError:
            return False
        if ok:
            self._answered = time.monotonic()
        return ok

    def start(self, trainer: Trainer, run_kwargs: dict) -> int:
        """A RunActor for `trainer` on the cluster (it starts training at once); its run id."""
        self.connect()
        return self._call("start", pickle.dumps(_state_of(trainer)), run_kwargs)

    def placed(self, run: int) -> bool:
        return bool(self._call("placed", run))

    def poll(self, run: int, since_step: int, full: bool = False) -> dict:
        return pickle.loads(self._call("poll", run, since_step, full))  # from our own bridge process

    def send(self, run: int, method: str, *args) -> None:
        with contextlib.suppress(ClusterError):
            self._call("send", run, method, args)

    def kill(self, run: int) -> None:
        with contextlib.suppress(ClusterError):
            self._call("kill", run)

    def shutdown(self) -> None:
        with self._lock:
            if self._bridge is not None:
                with contextlib.suppress(Exception):
                    self._bridge.shutdown()
            self._bridge = self._service = None


class _Controls:
    """What the front's mirror trainer forwards to its run's actor (Trainer.remote)."""

    def __init__(self, cluster: Cluster, run: int):
        self.cluster, self.run = cluster, run

    def pause(self) -> None:
        self.cluster.send(self.run, "pause")

    def resume(self) -> None:
        self.cluster.send(self.run, "resume")

    def stop(self) -> None:
        self.cluster.send(self.run, "stop")

    def set(self, values: dict) -> None:
        self.cluster.send(self.run, "set", values)


class RemoteRunner(Watched):
    """A run of `trainer` on the cluster, with a Runner's interface (runs.py): the app shows and
    steers it as it does a local one. `trainer` is the front's mirror of the run."""

    def __init__(self, trainer: Trainer, pool: TrainingPool, cluster: Cluster, *, lease: float | None = LEASE,
                 report_every: float = 0.1, **run_kwargs):  # fmt: skip
        self._watched(trainer, pool, lease)
        self.cluster = cluster
        self.report_every = max(report_every, 0.05)
        self.run_id: int | None = None  # its actor, in the cluster's bridge
        self.worker_pid: int | None = None  # the process training it, on its machine
        self._run_kwargs = {"report_every": self.report_every, **run_kwargs}
        self.thread = threading.Thread(target=self._work, daemon=True, name="playground-remote")
        pool._register(self)
        self.thread.start()

    # -- the thread ------------------------------------------------------------------------------
    def _work(self) -> None:
        t = self.trainer
        give_up = _Either(self._stop, self._abandoned, lambda: self._end("lease"))
        try:
            self.run_id = self.cluster.start(t, self._run_kwargs)
            t.remote = _Controls(self.cluster, self.run_id)
            t.running = True
            while not self.cluster.placed(self.run_id):  # runs beyond the lab's CPUs wait for one
                if give_up.is_set():
                    return
                time.sleep(self.report_every)
            stopping = False
            while True:
                if give_up.is_set() and not stopping:
                    stopping = True
                    t.remote.stop()
                out = self._poll(full=False)
                if out["done"]:
                    self._apply(self._poll(full=True))
                    if out["error"]:
                        self.error = ClusterError(out["error"])
                    break
                self._apply(out)
                time.sleep(self.report_every)
        except ClusterError as e:
            if self.waiting:  # it never trained: the cluster refused it
                self.error = ClusterError(f"{e}. The model stays here as it was: press Train to try again.")
            else:
                self._lost(e)
        except Exception as e:  # the actor, its machine or the whole cluster went away
            self._lost(e)
        finally:
            t.remote = None
            t.running = False
            if self.run_id is not None:
                self.cluster.kill(self.run_id)
            with t.lock:
                t._take_snapshot()  # the NaN guard goes back to these weights, not to older ones
            self.latest = t.report(done=True)
            self._done.set()
            self._stepped.set()

    def _lost(self, e: Exception) -> None:
        t = self.trainer
        lost = not self.cluster.alive()
        self.error = ClusterError(
            f"the cluster machine training this model went away ({e}). The model keeps its "
            f"weights from step {t.step_count}: press Train to go on"
            + (" (on this server: the cluster cannot be reached)." if lost else ".")
        )

    def _poll(self, full: bool) -> dict:
        out = self.cluster.poll(self.run_id, self.trainer.step_count, full)
        self.waiting = False
        return out

    def _apply(self, out: dict) -> None:
        """Copy a poll's numbers into the front's trainer."""
        t = self.trainer
        with t.lock:
            if "model" in out:
                t.model.load_state_dict(out["model"])
            for key, sd in out.get("opts", {}).items():
                t.opts[key].load_state_dict(sd)
            if "generator" in out:
                t.generator.set_state(out["generator"])
                t._perm, t._pos = out["perm"], out["pos"]
            t.step_count, t.elapsed, t.last = out["step"], out["elapsed"], out["last"]
            if "history" in out:
                t.history = History.from_state(out["history"])
        self.worker_pid = out.get("pid")
        report = out["report"]
        self.latest = Report(t.step_count, t.elapsed, report.steps_per_sec, dict(t.last), report.paused, False)
        if t.step_count > self._first_step:
            self._stepped.set()
        if self._abandoned():
            self._end("lease")
