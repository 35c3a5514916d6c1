"""One user's workspace in the app: their settings, their trainer, their checkpoints.

Plain Python, no Gradio: the app keeps one `Session` per browser session (in a gr.State), and
its handlers turn widget values into `TrainSettings`, call these methods and show what comes back.
A Session is never shared between users, so two students never see each other's models.

Bad settings raise (ConfigError, DataError, CheckpointError) *before* anything is replaced: the
model a user already has survives a typo.
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import datetime
import gc
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .checkpoint import load_trainer, save_checkpoint
from .classroom import Classroom
from .curves import long_frame, with_level
from .data import BUILTIN_COLOUR, load_data
from .files import remove_upload
from .models import BATCH_SIZE, DATA_FIELDS, ConfigError, a_model, default_config, family_of
from .runs import Runner, TrainingPool
from .trainer import TrainConfig, Trainer, labels_of, make_trainer
from .viz import PointsCanvas, forget_fonts, plane_limit

FLOOR = "entropy floor (best possible)"


_TRIM = threading.Lock()
_trim_timer: threading.Timer | None = None
_last_trim = float("-inf")  # time.monotonic() of the last trim
# seconds between two trims at the least: each is a full garbage collection, which holds the
# interpreter (every session's requests and trainings wait) for 0.5-0.7 s with a class about;
# students who come and go closed a session every few seconds (bench_class.py's soak: 55 trims in
# 4 minutes)
TRIM_SPACING = 15.0


def give_back_memory_soon(delay: float = 3.0) -> None:
    """Hand the memory of closed sessions back to the system, `delay` seconds from now, or
    TRIM_SPACING after the last time (once for all the sessions that close meanwhile: a class
    leaves at once). Freed models leave the C heap fragmented, and glibc keeps the pages:
    without this, a server's memory grows by tens of MB per class that comes and goes
    (bench/bench_class.py)."""
    global _trim_timer
    with _TRIM:
        if _trim_timer is not None and _trim_timer.is_alive():
            return
        wait = max(delay, _last_trim + TRIM_SPACING - time.monotonic())
        _trim_timer = threading.Timer(wait, _trim_now)
        _trim_timer.daemon = True
        _trim_timer.start()


def _trim_now() -> None:
    global _last_trim
    _last_trim = time.monotonic()
    _trim()


def _trim() -> None:
    forget_fonts()
    gc.collect()
    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, Windows, musl): nothing to do
        pass


COLOURS = {"auto": None, "grey": 1}  # the Train tab's Colour choices (and links') -> load_data's channels


def default_side(data: str) -> int:
    """The image side a builtin set opens at: 32 px for the colour sets, 28 for the rest."""
    return 32 if data in BUILTIN_COLOUR else 28


@dataclass
class TrainSettings:
    """Everything the Train tab sets, in one place. `model` holds the family's config overrides."""

    family: str = "gan"
    data: str = "ring8"
    image_size: int = 28
    batch_size: int = BATCH_SIZE  # Train-tab and link settings name the family's own (default_batch_size)
    seed: int = 0
    model: dict = field(default_factory=dict)
    channels: int | None = None  # None: as the data is (colour stays colour); 1: grey

    def data_args(self) -> dict:
        return {"spec": self.data, "seed": self.seed, "image_size": int(self.image_size), "channels": self.channels}



class Session:
    """A user's trainer and what belongs to it.

    `pool` is the app's TrainingPool, shared by every session (a deep copy keeps it shared).
    `views` is where the app's tabs keep this user's view state (the model Explore shows, the
    Inspect tab's figures, plot legends), so that closing the session lets go of all of it.

    Stop and Reset also stop a training that is still waiting in the app's queue: the app calls
    `request_training()` when Train is pressed (as the request is queued) and `may_train()` when
    its turn comes; a Stop or Reset in between makes that False. One that comes after
    `may_train()`, while the model is set up, ends the run `start()` then begins. (A Stop that
    reaches the server before the Train request itself is older than it, and voids nothing.)"""

    def __init__(self, checkpoint_dir: str | Path | None = None, adapt_threads: bool = True, pool: TrainingPool | None = None,
                 classroom: Classroom | None = None):  # fmt: skip
        self.trainer: Trainer | None = None
        self.runner: Runner | None = None
        self.settings: TrainSettings | None = None
        self.views: dict = {}
        self.uploads: set[Path] = set()  # temporary copies of this user's uploads (see adopt)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.adapt_threads = adapt_threads  # each run tunes its threads while it trains alone (see ThreadTuner)
        self.pool = pool or TrainingPool(1)
        self.lock = threading.RLock()  # one change of trainer at a time
        self.started = time.time()
        self.closed = False
        self._stops = 0  # Stops and Resets so far
        self._requested_after: int | None = None  # the value of _stops when Train was last pressed
        self.requested_at: float | None = None  # and when (time.monotonic())
        # the class (playground/classroom.py), which the session joins when its user first shows
        # up (join_class): Gradio also makes copies of a State's value that nobody ever uses
        self.classroom = classroom
        self.number: int | None = None  # in the class, once joined
        self.teacher = False
        self.name = ""  # what the student typed, for the teacher's wall
        self.shown: tuple[int, np.ndarray, float] | None = None  # (step, the samples picture the user sees, when)
        self.messages: collections.deque = collections.deque(maxlen=8)  # from the teacher, not yet shown
        self.stream_ended: datetime.datetime | None = None  # when the app's last stream of a run ended

    def __deepcopy__(self, memo):
        # gr.State deep-copies its default for every new browser session: give each a fresh one
        fresh = Session(self.checkpoint_dir, self.adapt_threads, self.pool, self.classroom)
        fresh.teacher = self.teacher
        return fresh

    def join_class(self) -> None:
        """Join the app's class, if it has one, unless already in it (the page's load, a Train
        or a name from an API client)."""
        if self.classroom is not None and self.number is None and not self.closed:
            self.classroom.join(self, teacher=self.teacher)

    def show(self, step: int, picture: np.ndarray) -> None:
        """The samples picture this user's Train tab now shows (what the teacher's wall shows;
        kept only in a class)."""
        if self.classroom is None:
            return
        self.shown = (step, picture, time.monotonic())

    def take_message(self):
        """The newest message from the teacher not yet shown (older unshown ones are dropped:
        the last settings sent are the ones that count), or None."""
        newest = None
        while self.messages:
            newest = self.messages.popleft()
        return newest

    # -- the model -------------------------------------------------------------------------------
    def prepare(self, settings: TrainSettings, *, fresh: bool = False) -> tuple[Trainer, bool]:
        """The trainer to continue with these settings: the current one when its model fits them
        (live lr/beta applied), else a new one. Returns (trainer, is_new). Raises on bad settings
        without touching the current trainer."""
        with self.lock:
            t = self.trainer
            if t is not None and not fresh and fits(t, settings):
                live = {k: v for k, v in settings.model.items() if k in t.model.live_params}
                if live:
                    t.set(**live)
                self.settings = settings
                return t, False
            data = load_data(**settings.data_args())
            cfg = TrainConfig(batch_size=int(settings.batch_size), seed=int(settings.seed), device="cpu", adapt_threads=self.adapt_threads)
            new = make_trainer(settings.family, data, settings.model, cfg, data_args=settings.data_args())
            self.end_run()  # not a Stop: the request this serves still stands
            self.trainer, self.settings = new, settings
            return new, True

    def start(self, trainer: Trainer, **run_kwargs) -> Runner:
        """Train `trainer` in the background until stopped (or run_kwargs' steps/seconds), in a
        slot of the pool, for as long as the caller keeps touching the runner (see runs.py)."""
        with self.lock:
            if self.closed:
                raise ConfigError("this session has ended: reload the page")
            if self.runner is not None and not self.runner.done:
                raise ConfigError("this session is already training")
            self.runner = self.pool.start(trainer, **run_kwargs)
            if not self.may_train():  # a Stop or Reset came after the caller's may_train(), while
                self.runner.stop()  # it set up the model: the run ends at once
            return self.runner

    def request_training(self) -> None:
        """Train was pressed (the request may wait in a queue before it runs)."""
        self._requested_after = self._stops
        self.requested_at = time.monotonic()  # when, for the time to the run's first picture

    def may_train(self) -> bool:
        """Whether the last Train request still stands: no Stop or Reset came after it (a call
        that did not go through the queue, from a test or a script, has no request to void)."""
        return self._requested_after in (None, self._stops) and not self.closed

    def step_by_hand(self, phases: tuple[str | None, ...] = (None,), *, whole: str = "Step") -> Trainer:
        """Step the current model by hand: one whole step (None), or a GAN's phases in order
        ("d", "g"). A running training pauses first, as it would for any hand on the wheel.
        `whole` names the button for a whole step in the message a one-step family gets."""
        t = self.trainer
        if t is None:
            raise ConfigError("there is no model to step yet: start a lesson, or set one up in the Train tab")
        if any(p is not None and p not in t.model.phases for p in phases):
            raise ConfigError(f"D and G steps are for GANs; {a_model(t.model.family)} trains in one step: use {whole}")
        if t.running:
            if t.remote is not None and self.runner is not None:
                self.runner.stop(timeout=60)  # a run on a cluster ends first: its weights come back here
            else:
                t.pause()
        for p in phases:
            t.step(p)
        return t

    def reset(self) -> None:
        with self.lock:
            self.stop()
            self.trainer, self.settings, self.runner = None, None, None

    def close(self) -> None:
        """The browser session ended: stop training and let go of the model, its data, its
        optimizers, curves and everything the tabs kept for this user."""
        with self.lock:
            self.closed = True
            self.reset()
            self.views.clear()
            self.shown = None
            self.messages.clear()
            for path in self.uploads:
                remove_upload(path)
            self.uploads.clear()
        if self.classroom is not None:
            self.classroom.leave(self)
        give_back_memory_soon()

    def adopt(self, path: str | Path | None) -> None:
        """`path` is a temporary copy of something this user uploaded: delete it when the
        session closes."""
        if path:
            self.uploads.add(Path(path))

    def stop(self) -> None:
        """End the running training, if any, and any Train request still waiting (the model stays)."""
        self._stops += 1
        self.end_run()

    def end_run(self) -> None:
        """End the running training, if any (the model stays)."""
        if self.runner is not None:
            self.runner.stop()
        if self.trainer is not None:
            self.trainer.stop()

    # -- checkpoints -----------------------------------------------------------------------------
    def save(self, name: str, folder: str | Path | None = None) -> Path:
        if self.trainer is None:
            raise ConfigError("there is no model to save yet: train one first")
        name = safe_name(name)
        folder = Path(folder) if folder else self.checkpoint_dir
        if folder is None:
            raise ConfigError("this session has no checkpoint folder")
        return save_checkpoint(folder / f"{name}.safetensors", self.trainer)

    def load(self, path: str | Path) -> Trainer:
        """Continue training from a checkpoint file (validated; never unpickled)."""
        with self.lock:
            new = load_trainer(path, device="cpu")
            self.stop()
            self.trainer = new
            data_args = new.data_args
            self.settings = TrainSettings(
                family=new.model.family,
                data=data_args.get("spec", ""),
                image_size=data_args.get("image_size", 28),
                channels=data_args.get("channels"),
                batch_size=new.config.batch_size,
                seed=data_args.get("seed", 0),
                model={k: v for k, v in new.model.config.to_dict().items() if k not in DATA_FIELDS},
            )
            return new


def fits(trainer: Trainer, settings: TrainSettings) -> bool:
    """Whether the trainer's model is the one these settings describe, up to the settings that
    may change while it trains (lr, beta). When it is not, Train starts a new model."""
    if trainer.model.family != settings.family or trainer.config.batch_size != settings.batch_size:
        return False
    if not same_data(trainer, settings.data_args()):
        return False
    try:
        classes = {"labels": labels_of(trainer.data, settings.family)} if settings.model.get("conditional") else {}
        want = default_config(settings.family, trainer.data.sample_shape, **{**settings.model, **classes}).to_dict()
    except ConfigError:
        return False  # invalid settings never fit; building the new model will say why
    have = trainer.model.config.to_dict()
    # the data's shape and classes: the same data (above) gives the same
    return all(want[k] == have[k] for k in want if k not in trainer.model.live_params and k not in DATA_FIELDS)


def same_data(trainer: Trainer, data_args: dict) -> bool:
    """Whether these data arguments give the trainer's data: points ignore the image side and
    channels, and channels None (as the data is) is the channels the trainer's data has."""
    have, want = dict(trainer.data_args), dict(data_args)
    if trainer.data.kind == "points":
        for args in (have, want):
            args.pop("image_size", None)
            args.pop("channels", None)
    else:
        own = trainer.data.x.shape[1]
        have["channels"] = have.get("channels") or own
        want["channels"] = want.get("channels") or own
    return have == want


def safe_name(name: str) -> str:
    """A file name from user text: letters, digits, '-', '_' only (no paths)."""
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in (name or "").strip())[:64].strip("-")
    if not cleaned:
        raise ConfigError("give the checkpoint a name (letters, digits, '-' and '_')")
    return cleaned


def training_canvas(trainer: Trainer) -> PointsCanvas | None:
    """The picture of 2-D data that a training's samples are painted on (None for images):
    drawn once per process for the same data."""
    if trainer.data.kind != "points":
        return None
    return PointsCanvas.of(trainer.data.x[:2000], plane_limit(trainer.data.x))


def warm_up() -> None:
    """Train the default settings for one step and draw their canvas, once, before the first
    student does: a process's first training pays for lazy imports (PyTorch's optimizer
    machinery, matplotlib's fonts) and kernel builds, seconds that a class pressing Train
    together would otherwise wait for all at once. The canvas stays cached for them."""
    s = Session()
    try:
        t, _ = s.prepare(TrainSettings())
        t.step()
        t.progress_samples()
        training_canvas(t)
    finally:
        s.close()


# -- what the Train tab shows -------------------------------------------------------------------


def status_text(trainer: Trainer | None, rate: float = 0.0, state: str = "") -> str:
    if trainer is None:
        return "No model yet. Choose a family and data, then press **Train**."
    last = trainer.last
    parts = [f"**{state or 'ready'}**", f"step **{trainer.step_count:,}**", f"{trainer.elapsed:.1f} s"]
    if rate:
        parts.append(f"{rate:,.0f} steps/s")
    for _, series in trainer.model.curves:  # the numbers its curves show, latest values
        parts += [f"{trainer.model.series[k]} {last[k]:.3g}" for k in series if isinstance(last.get(k), float)][:3]
    if isinstance(last.get("bits_per_dim"), float):  # images under a likelihood of 8-bit (or binary) pixels
        parts.append(f"{last['bits_per_dim']:.3f} bits/dim")
    return " · ".join(parts)


def curve_frames(trainer: Trainer | None, family: str) -> list[pd.DataFrame]:
    """Long-format frames (step, value, series) for the family's two curve panels."""
    cls = family_of(family)
    rows = trainer.history.rows if trainer is not None else []
    entropy = trainer.data.entropy if trainer is not None else None
    frames = []
    for _, parts in cls.curves:
        df = long_frame(rows, {k: cls.series[k] for k in parts})
        if entropy is not None and "nll" in parts:  # the floor the NLL curve aims at
            df = with_level(df, entropy, FLOOR)
        frames.append(df)
    return frames


def settings_dict(settings: TrainSettings) -> dict:
    return asdict(settings)
