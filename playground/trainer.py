"""The training loop, the same for every model family.

The Trainer steps a model (whose `train_step` holds the family's math) on an in-memory dataset and
reports outward: `step()` returns the step's named numbers, `run()` is a generator that yields a
`Report` a few times per second. It never prints, plots or writes files; the command line, the app
and the tests decide what to do with the reports (as minGPT's trainer does with callbacks).

Also here: pause / resume / stop for a run in progress, single steps (and a GAN's D-only or G-only
phase), learning rate and beta changes mid-run, a fixed latent batch for progress frames, a
bounded history of curves, and a guard that stops on a NaN/inf loss and puts back the last good
weights.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import torch

from .data import holdout_split
from .models import BATCH_SIZE, ConfigError, build_model, copy_model, copy_tensors, default_batch_size, default_config
from .models._common import check_range

if TYPE_CHECKING:
    from .data import Dataset


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good weights were put back."""


@dataclass
class TrainConfig:
    batch_size: int = BATCH_SIZE  # a family may train with another by default (default_batch_size)
    seed: int = 0
    device: str = "auto"  # auto = cuda when present, else cpu
    n_fixed: int | None = None  # size of the fixed latent batch for progress frames;
    # None = 64 for images (an 8 x 8 grid), 1000 for points (enough to see every mode)
    snapshot_every: int = 100  # steps between copies of the weights the NaN guard can go back to
    holdout: float = 0.1  # share of the data kept out of training, for held-out metrics
    adapt_threads: bool = True  # let run() pick 1 or all PyTorch threads by measured speed
    # (on 2 cores, 2 threads are ~1.8x faster on an idle machine but can be 2-50x slower than
    # 1 when another program keeps a core busy; see ThreadTuner)

    def __post_init__(self):
        check_range("batch_size", self.batch_size, 1, 8192)
        check_range("seed", self.seed, 0, 2**31 - 1)
        if self.n_fixed is not None:
            check_range("n_fixed", self.n_fixed, 1, 10_000)
        check_range("snapshot_every", self.snapshot_every, 1, 1_000_000)
        check_range("holdout", self.holdout, 0.0, 0.5)
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device must be auto, cpu or cuda; got {self.device!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but PyTorch sees no GPU; use --device cpu or auto")
    return torch.device(device)


def configure_threads(n: int | None = None) -> int:
    """Set PyTorch's intra-op threads once for the process (default: every core it may use)."""
    if n is None:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, n))
    return torch.get_num_threads()


class ThreadTuner:
    """Picks the faster of 1 and `most` PyTorch threads while a run goes on.

    Small models on few cores are very sensitive to other programs: OpenMP threads that wait
    for a descheduled sibling at every layer can make 2 threads far slower than 1, while on an
    idle machine 2 are nearly twice as fast. So the tuner measures both for a short trial, keeps
    the faster, and checks again every `period` seconds of training (2 % of the time is spent
    trying the other setting). Measured with bench/bench_trainer.py-style runs on 2 cores: -3 %
    on an idle machine, +60-80 % with one other busy program, and up to 50x when several are.
    torch.set_num_threads sets the calling thread's OpenMP threads, so each training thread
    tunes its own (the app's runs step on one thread each while the pool is crowded).
    """

    def __init__(self, most: int, period: float = 20.0, trial: float = 0.4):
        self.most, self.period, self.trial = most, period, trial
        self.rates: dict[int, float] = {}  # steps per second measured for each setting
        self.current = most
        self._queue = [most, 1]  # settings still to measure in this round; empty = holding
        self._t0: float | None = None
        self._s0 = 0

    def update(self, elapsed: float, steps: int) -> None:
        """Call after each step with the run's training time and step count."""
        if self._t0 is None:
            return self._begin(elapsed, steps)
        window = self.trial if self._queue else self.period
        if elapsed - self._t0 < window:
            return
        if self._queue:
            n = self._queue.pop(0)
            self.rates[n] = (steps - self._s0) / (elapsed - self._t0)
            if not self._queue:
                self.current = max(self.rates, key=self.rates.get)
        else:  # the hold is over: measure both again, the held setting first
            self._queue = [self.current, *(c for c in (self.most, 1) if c != self.current)]
        self._begin(elapsed, steps)

    def restart(self) -> None:
        """Measure both settings again from the next update on (the conditions changed)."""
        self.rates, self._queue, self._t0 = {}, [self.most, 1], None

    def _begin(self, elapsed: float, steps: int) -> None:
        torch.set_num_threads(self._queue[0] if self._queue else self.current)
        self._t0, self._s0 = elapsed, steps


class History:
    """Curves with a bounded number of points per series, however long the run.

    Points are means over buckets of steps; when `max_points` buckets are full, neighbours are
    merged and the bucket width doubles, so memory stays fixed and the curve stays smooth.
    """

    def __init__(self, max_points: int = 1000):
        self.max_points = max_points
        self.width = 1  # steps per bucket
        self.rows: list[dict[str, float]] = []
        self._sum: dict[str, float] = {}
        self._count: dict[str, int] = {}
        self._steps = 0

    def add(self, step: int, values: dict[str, float]) -> None:
        for k, v in values.items():
            self._sum[k] = self._sum.get(k, 0.0) + v
            self._count[k] = self._count.get(k, 0) + 1
        self._steps += 1
        if self._steps >= self.width:
            row = {k: self._sum[k] / self._count[k] for k in self._sum}
            self.rows.append({"step": step, **row})
            self._sum, self._count, self._steps = {}, {}, 0
            if len(self.rows) >= self.max_points:
                self.rows = [_merge(a, b) for a, b in zip(self.rows[::2], self.rows[1::2])]
                self.width *= 2

    def columns(self) -> dict[str, list[float]]:
        keys = sorted({k for r in self.rows for k in r})
        return {k: [r.get(k, math.nan) for r in self.rows] for k in keys}

    def state(self) -> dict:
        return {"max_points": self.max_points, "width": self.width, "rows": self.rows}

    @classmethod
    def from_state(cls, state: dict) -> History:
        h = cls(int(state.get("max_points", 1000)))
        h.width = int(state.get("width", 1))
        h.rows = [dict(r) for r in state.get("rows", [])]
        return h


def _merge(a: dict, b: dict) -> dict:
    out = {k: (a[k] + b[k]) / 2 if k in a and k in b else a.get(k, b.get(k)) for k in {**a, **b}}
    out["step"] = b["step"]
    return out


@dataclass
class Report:
    """What a run tells the outside world, a few times per second."""

    step: int
    elapsed: float  # seconds spent training (pauses excluded)
    steps_per_sec: float  # over the last reporting interval
    logs: dict = field(default_factory=dict)  # the latest step's named numbers
    paused: bool = False
    done: bool = False


def _scalars(parts: dict[str, torch.Tensor | float]) -> dict:
    """A step's parts as Python numbers (a cohort's come as numbers already)."""
    out = {}
    for k, v in parts.items():
        out[k] = v if not isinstance(v, torch.Tensor) else v.item() if v.dim() == 0 else v.tolist()
    return out


class Trainer:
    """Steps one model on one dataset; family-agnostic."""

    def __init__(self, model, data: Dataset, config: TrainConfig | None = None, *, data_args: dict | None = None):
        self.config = config or TrainConfig()
        self.device = resolve_device(self.config.device)
        self.model = model.to(self.device)
        self.data = data
        # how to load the data again (load_data's keyword arguments), kept in checkpoints
        self.data_args = dict(data_args or {"spec": data.spec})
        if len(data) < 1:
            raise ConfigError("the dataset is empty")
        train_idx, _ = holdout_split(len(data), self.config.holdout)
        self.x = data.x[train_idx].to(self.device).contiguous()
        # a conditional model trains on (picture, label) pairs
        self.y = check_labels(model, data)[train_idx].to(self.device) if getattr(model.config, "conditional", False) else None
        self.batch_size = min(self.config.batch_size, self.x.shape[0])
        if hasattr(model, "check_batch_size"):  # a family whose steps need a batch of some size
            model.check_batch_size(self.batch_size)
        self.opts = model.make_optimizers()
        self.generator = torch.Generator(self.device).manual_seed(self.config.seed)
        n_fixed = self.config.n_fixed or (1000 if data.kind == "points" else 64)
        # drawn on the CPU so that a seed gives the same frames on every device
        self.fixed_z = torch.randn(n_fixed, model.latent_dim, generator=torch.Generator().manual_seed(self.config.seed + 1)).to(self.device)
        self.step_count = 0
        self.elapsed = 0.0
        self.history = History()
        self.last: dict = {}
        self.lock = threading.RLock()  # held while a step changes the weights
        self._perm = torch.empty(0, dtype=torch.long, device=self.device)
        self._pos = 0
        self._paused = threading.Event()
        self._stop = threading.Event()
        self._snapshot = None
        self._take_snapshot()
        self.running = False  # a run() is in progress (maybe paused)
        # a playground.cohort.Cohort that takes this trainer's whole steps together with other
        # runs' (set by the app's training pool for the length of a run); None: steps alone
        self.cohort = None
        # whether the next whole step goes through the cohort (set by whoever runs the steps, in
        # step with its turns); None: whenever the cohort is shared
        self.via_cohort: bool | None = None
        # the controls of this run's actor when it trains on a cluster (playground/cluster.py):
        # this trainer is then the app's mirror of it, and pause, resume, stop and live settings
        # go there too
        self.remote = None

    # -- data ------------------------------------------------------------------------------------
    def next_batch(self) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The next batch of a shuffled pass over the data (a new permutation every epoch); for a
        conditional model, the pictures and their labels, (x, y)."""
        n, b = self.x.shape[0], self.batch_size
        if self._pos + b > self._perm.numel():
            self._perm = torch.randperm(n, generator=self.generator, device=self.device)
            self._pos = 0
        idx = self._perm[self._pos : self._pos + b]
        self._pos += b
        x = self.x.index_select(0, idx)
        return x if self.y is None else (x, self.y.index_select(0, idx))

    # -- stepping --------------------------------------------------------------------------------
    def step(self, phase: str | None = None) -> dict:
        """One training step (or, for a GAN, only its "d" or "g" phase). Returns its named parts."""
        if phase is not None and phase not in self.model.phases:
            allowed = ", ".join(self.model.phases) or "none"
            raise ConfigError(f"phase {phase!r} is not a step of a {self.model.family}; allowed: {allowed}")
        with self.lock:
            t0 = time.perf_counter()
            self.model.train()
            if phase is None and self.cohort is not None and (self.cohort.shared if self.via_cohort is None else self.via_cohort):
                parts = self.cohort.step(self)  # waits for a round of the cohort's batched steps
            else:
                parts = self.model.train_step(
                    self.next_batch, self.opts, batch_size=self.batch_size, step=self.step_count,
                    phase=phase, generator=self.generator,
                )  # fmt: skip
            logs = _scalars(parts)
            bad = [k for k, v in logs.items() if isinstance(v, float) and not math.isfinite(v)]
            if bad:
                good_step = self._restore_snapshot()
                raise TrainingDiverged(
                    f"training diverged at step {self.step_count + 1}: {', '.join(bad)} became "
                    f"{logs[bad[0]]}. The weights from step {good_step} were put back. Lower the "
                    f"learning rate (now {self.model.config.lr:g}) and train again."
                )
            self.step_count += 1
            self.elapsed += time.perf_counter() - t0
            self.last = {"step": self.step_count, "phase": phase, **logs}
            self.history.add(self.step_count, {k: v for k, v in logs.items() if isinstance(v, float)})
            if self.step_count % self.config.snapshot_every == 0:
                self._take_snapshot()
        return self.last

    def run(self, steps: int | None = None, seconds: float | None = None, report_every: float = 0.25,
            around_step: Callable[[], AbstractContextManager[object]] | None = None,
            crowded: Callable[[], bool] | None = None) -> Iterator[Report]:  # fmt: skip
        """Train until `steps` more steps or `seconds` of training time (or stop()), yielding a
        Report every `report_every` seconds and a final one with done=True. While paused it keeps
        yielding (paused=True) without stepping, so a UI stays live; resume() carries on.
        Each step runs inside `around_step()` when given (the app's runs take turns there,
        and step aside for interactive work); time spent waiting in it is not training time.
        While `crowded()` is true (other runs share the cores) it steps on one PyTorch thread;
        alone, on the process's threads, or on the thread tuner's choice when adapt_threads."""
        self._stop.clear()
        self.running = True
        try:
            yield from self._run(steps, seconds, report_every, around_step, crowded)
        finally:
            self.running = False

    def _run(self, steps, seconds, report_every, around_step, crowded) -> Iterator[Report]:
        start_step, start_time = self.step_count, self.elapsed
        last_t, last_step = time.perf_counter(), self.step_count
        rate = 0.0
        most = torch.get_num_threads()
        tuner = ThreadTuner(most) if self.config.adapt_threads and most > 1 and self.device.type == "cpu" else None
        shared = crowded is not None and crowded()  # stepping on one thread while other runs share the cores
        if shared:  # from the first step on: a thread's first parallel region starts its OpenMP team
            torch.set_num_threads(1)
        while not self._stop.is_set():
            if steps is not None and self.step_count - start_step >= steps:
                break
            if seconds is not None and self.elapsed - start_time >= seconds:
                break
            if self._paused.is_set():
                self._paused_wait(report_every)
                last_t, last_step = time.perf_counter(), self.step_count
                yield self.report(0.0, paused=True)
                continue
            if around_step is None:
                self.step()
            else:
                with around_step():
                    if self._stop.is_set():  # stopped while it waited for its turn
                        break
                    self.step()
            if crowded is not None and crowded() != shared:
                shared = not shared
                torch.set_num_threads(1 if shared else most)
                if tuner is not None:
                    tuner.restart()  # alone again: measure afresh
            elif tuner is not None and not shared:
                tuner.update(self.elapsed, self.step_count)
            now = time.perf_counter()
            if now - last_t >= report_every:
                rate = (self.step_count - last_step) / (now - last_t)
                last_t, last_step = now, self.step_count
                yield self.report(rate)
        if tuner is not None or shared:
            torch.set_num_threads(most)
        done_steps = self.step_count - start_step
        total = self.elapsed - start_time
        yield self.report(done_steps / total if total > 0 else rate, done=True)

    def _paused_wait(self, timeout: float) -> None:
        end = time.perf_counter() + timeout
        while self._paused.is_set() and not self._stop.is_set() and time.perf_counter() < end:
            time.sleep(0.02)

    def report(self, rate: float = 0.0, *, paused: bool = False, done: bool = False) -> Report:
        return Report(self.step_count, self.elapsed, rate, dict(self.last), paused, done)

    def pause(self) -> None:
        self._paused.set()
        if self.remote is not None:
            self.remote.pause()

    def resume(self) -> None:
        self._paused.clear()
        if self.remote is not None:
            self.remote.resume()

    def stop(self) -> None:
        self._stop.set()
        self._paused.clear()
        if self.remote is not None:
            self.remote.stop()

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    # -- settings that may change mid-run ------------------------------------------------------
    def set(self, **values) -> None:
        """Change live settings (lr for every family, beta for VAEs) between two steps."""
        allowed = self.model.live_params
        unknown = [k for k in values if k not in allowed]
        if unknown:
            raise ConfigError(f"{', '.join(unknown)} cannot change while training; allowed: {', '.join(allowed)}")
        cfg = self.model.config
        new = type(cfg)(**{**cfg.to_dict(), **values})  # validates the new values
        with self.lock:
            self.model.config = new
            if "lr" in values:
                for opt in self.opts.values():
                    for group in opt.param_groups:
                        group["lr"] = new.lr
        if self.remote is not None:
            self.remote.set(values)

    # -- looking at the model ------------------------------------------------------------------
    @torch.no_grad()
    def progress_samples(self) -> torch.Tensor:
        """The model's samples from the fixed latent batch (comparable from frame to frame).

        A model whose samples take many passes (a diffusion model's `preview`, a chain of tens of
        steps) is copied under the lock and sampled outside it, so training does not wait."""
        slow = hasattr(self.model, "preview")
        with self.lock:
            model = copy_model(self.model) if slow else self.model
            model.eval()
            if not slow:
                out = model.decode(self.fixed_z)
                model.train()
        if slow:
            out = model.preview(self.fixed_z)
        return out.cpu()

    # -- the NaN guard -------------------------------------------------------------------------
    def _take_snapshot(self) -> None:
        self._snapshot = (
            self.step_count,
            copy_tensors(self.model.state_dict()),
            {k: copy_tensors(o.state_dict()) for k, o in self.opts.items()},
        )

    def _restore_snapshot(self) -> int:
        step, model_state, opt_states = self._snapshot
        self.model.load_state_dict(model_state)
        for k, o in self.opts.items():
            o.load_state_dict(opt_states[k])
        return step


def make_trainer(
    family: str,
    data: Dataset,
    model_overrides: dict | None = None,
    train_config: TrainConfig | None = None,
    data_args: dict | None = None,
) -> Trainer:
    """A fresh model for `data` and its trainer; the weights are seeded by the train config's
    seed (without a train config: the defaults, with the family's batch size for this data)."""
    cfg = train_config or TrainConfig(batch_size=default_batch_size(family, data.sample_shape))
    overrides = dict(model_overrides or {})
    if overrides.get("conditional"):  # the classes come from the data
        overrides["labels"] = labels_of(data, family)
    model_cfg = default_config(family, data.sample_shape, **overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = build_model(family, model_cfg)
    return Trainer(model, data, cfg, data_args=data_args)


def labels_of(data: Dataset, family: str = "model") -> tuple[str, ...]:
    """The class names a conditional model of `data` is conditioned on; a ConfigError that says
    which data has labels when this data has none."""
    if data.y is None or not data.label_names or len(data.label_names) < 2:
        raise ConfigError(
            f"a conditional {family} learns from labelled examples, and {data.name} has no labels. "
            "Labelled data: digits, emoji, glyphs, shapes, mnist, fashion-mnist, ring8, grid25, moons, spirals, "
            "a folder or zip with one subfolder per class, or an .npz with a y array"
        )
    return tuple(data.label_names)


def check_labels(model, data: Dataset) -> torch.Tensor:
    """The data's labels for a conditional model, checked against the classes it was built with."""
    names = labels_of(data, model.family)
    if names != tuple(model.config.labels):
        raise ConfigError(
            f"this conditional {model.family} knows {len(model.config.labels)} classes "
            f"({', '.join(model.config.labels[:8])}...), but {data.name} has {len(names)} ({', '.join(names[:8])}...): "
            "train a new model on this data"
        )
    return data.y
