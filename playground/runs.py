"""Background training runs for the app: a bounded pool, and runs that end when nobody watches.

A `Runner` trains one `Trainer` in a thread of its own, so training never waits for the
pictures: whoever shows the run polls `latest` a few times per second. Two rules keep a class's
server healthy whatever its users do:

- **The pool limit always holds.** A run takes a slot of its `TrainingPool` before its first step
  and gives it back when it ends, so at most `limit` trainings step at once in the process, and a
  run whose owner vanished cannot keep a slot that a new run then takes as well.
- **A run lives only while someone watches it.** The watcher (the app's streaming loop) calls
  `touch()` each time it comes back for a report; a run whose watcher has not come back for
  `lease` seconds stops by itself. Stop, Reset, a closed tab, a cancelled or dropped client and
  an expired session all end a run this way or sooner, in any order, even when the app's own
  clean-up never runs (a streaming generator that the web framework drops without closing).

Cheap interactive work (a slider's decode, a page load) stays quick while a class trains, in
two ways:

- **Runs step in turns**, one per core at a time (`Turns`), each for a time slice of a few
  steps while others wait: on 2 cores, eight trainings stepping at once spend their time
  fighting over the interpreter lock, which makes fewer steps in all than two at a time and
  leaves every other thread of the server waiting for that lock. Turns go round in the order
  runs asked, so every run of a class gets the same share of the cores.
- **Training threads run at a lower CPU priority** than the rest of the process (`nice` +10 on
  Linux), for the time they spend outside the lock (PyTorch's kernels).

A crowded pool steps each run more slowly; `TrainingPool.crowding()` says by how much, so that
whoever shows the runs can refresh them that much less often.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
import time
import weakref
from collections.abc import Iterator

from .cohort import Cohort, cohort_key
from .trainer import Report, Trainer

TRAINING_NICENESS = 10  # training threads' nice value over the process's (Linux; 0 = off)
LEASE = 2.0  # seconds a run goes on without its watcher coming back
TURN_SLICE = 0.05  # seconds of steps a run takes in one turn while other runs wait


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class Turns:
    """At most `n` threads inside at once; the others wait their turn in the order they came
    (first come, first served: a thread that leaves and comes straight back queues behind
    those already waiting, so no training starves another). A leaving thread hands its place
    to the first in line directly, so the line never wakes up all at once."""

    def __init__(self, n: int):
        if n < 1:
            raise ValueError(f"turns need at least one place; got {n}")
        self.n = n
        self._lock = threading.Lock()
        self._free = n
        self._line: collections.deque[threading.Event] = collections.deque()
        self._firsts: set[threading.Event] = set()  # the places in line of runs' first steps

    @property
    def waiting(self) -> int:
        """How many threads wait in line."""
        return len(self._line)

    def acquire(self, stop: threading.Event | None = None, poll: float = 0.5, first: bool = False) -> bool:
        """Wait for a place (True), or until `stop` is set (False, out of the line). `first`
        joins the line at its head (a run's very first step: its owner sees a picture at once,
        and one step early costs the others nothing they notice)."""
        with self._lock:
            if self._free and not self._line:
                self._free -= 1
                return True
            mine = threading.Event()
            if first:  # behind the other first steps, ahead of the rest
                self._line.insert(sum(1 for e in self._line if e in self._firsts), mine)
                self._firsts.add(mine)
            else:
                self._line.append(mine)
        while not mine.wait(poll):
            if stop is not None and stop.is_set():
                with self._lock:
                    if not mine.is_set():
                        self._line.remove(mine)
                        self._firsts.discard(mine)
                        return False
                self.release()  # handed a place as it gave up: pass it on
                return False
        return True

    def release(self) -> None:
        with self._lock:
            if self._line:
                head = self._line.popleft()
                self._firsts.discard(head)
                head.set()  # the place goes straight to the first in line
            else:
                self._free += 1

    @contextlib.contextmanager
    def turn(self, stop: threading.Event | None = None) -> Iterator[bool]:
        """Wait for a turn (yields True), or until `stop` is set (yields False, without one)."""
        mine = self.acquire(stop)
        try:
            yield mine
        finally:
            if mine:
                self.release()


class TrainingPool:
    """At most `limit` runs train at once in this process; the rest wait for a slot.

    One pool per app (the app builds it; every session's runs share it). `running` counts the
    runs that hold a slot, `waiting` those queued for one; `threads()` lists the live training
    threads, for tests and for the teacher's view of the server."""

    def __init__(self, limit: int = 1, stepping: int | None = None, batching: bool = False, cluster=None):
        if limit < 1:
            raise ValueError(f"a training pool needs at least one slot; got {limit}")
        self.limit = limit
        # runs step in turns, `stepping` at a time (default: one per core): on 2 cores, eight
        # trainings stepping at once fight over the interpreter lock and make fewer steps in all
        self.turns = Turns(stepping or min(limit, usable_cores()))
        self._cond = threading.Condition()
        self._holders: set[int] = set()  # ids of the runs holding a slot
        self._waiting = 0
        self._runs: weakref.WeakSet[Runner] = weakref.WeakSet()
        # same-shaped runs step together as one batched model (playground/cohort.py; app.py --batching)
        self.batching = batching
        self._cohorts: dict[tuple, list[Cohort]] = {}  # a shape's cohorts: one per place to step, at most
        self.cluster = cluster  # a playground.cluster.Cluster: runs train there (app.py --cluster)

    @property
    def running(self) -> int:
        with self._cond:
            return len(self._holders)

    @property
    def waiting(self) -> int:
        with self._cond:
            return self._waiting

    def crowding(self) -> float:
        """How many runs share each place to step (1 while there are no more runs than places):
        each run steps that many times slower, so whoever shows it can refresh that much less
        often, which keeps what a full pool costs the server's event loop the same."""
        return max(1.0, self.running / self.turns.n)

    def runners(self) -> list[Runner]:
        """The runs of this pool whose threads are alive (waiting or training)."""
        return [r for r in list(self._runs) if r.thread.is_alive()]

    def threads(self) -> list[threading.Thread]:
        return [r.thread for r in self.runners()]

    def acquire(self, run: Runner, give_up: threading.Event, poll: float = 0.05) -> bool:
        """Wait for a slot for `run`; False when `give_up` is set first."""
        with self._cond:
            self._waiting += 1
            try:
                while len(self._holders) >= self.limit:
                    if give_up.is_set():
                        return False
                    self._cond.wait(poll)
                if give_up.is_set():
                    return False
                self._holders.add(id(run))
                return True
            finally:
                self._waiting -= 1

    def release(self, run: Runner) -> None:
        with self._cond:
            self._holders.discard(id(run))
            self._cond.notify_all()

    def _register(self, run: Runner) -> None:
        self._runs.add(run)

    def start(self, trainer: Trainer, **kwargs) -> Runner:
        """A run of `trainer` in this pool: on the pool's cluster when it has one (a
        RemoteRunner; see playground/cluster.py), else in this process."""
        if self.cluster is not None:
            from .cluster import RemoteRunner

            if self.cluster.alive():
                return RemoteRunner(trainer, self, self.cluster, **kwargs)
            run = Runner(trainer, self, **kwargs)
            run.note = f"The cluster at {self.cluster.address} cannot be reached: this run trains on this server."
            return run
        return Runner(trainer, self, **kwargs)

    def join_cohort(self, trainer: Trainer) -> Cohort | None:
        """Join `trainer` to a cohort of the pool's runs of its shape, and return it (None: it
        steps alone: batching is off, or its model cannot be stacked).

        A shape's runs are spread over up to one cohort per place to step (`turns.n`, a core
        each), the smallest first, and each cohort's rounds run on one PyTorch thread: on two
        cores, two rounds of fifteen at once make more steps than one round of thirty on both
        cores, whose tensors outgrow the caches (bench/bench_cohort.py)."""
        key = cohort_key(trainer) if self.batching else None
        if key is None:
            return None
        with self._cond:
            lanes = self._cohorts.setdefault(key, [])
            if len(lanes) < self.turns.n and all(c.joined for c in lanes):
                lanes.append(Cohort(key, around_step=self._cohort_turn, threads=self._round_threads, on_empty=self._drop_cohort))
            cohort = min(lanes, key=lambda c: c.joined)
            cohort.join(trainer)
            return cohort

    def balance_cohort(self, trainer: Trainer) -> Cohort | None:
        """Between two steps of `trainer`: move it to the smallest cohort of its shape when its
        own has two members more (others left), so that every run of a class steps at about the
        same rate. Returns its cohort, moved or not."""
        cohort = trainer.cohort
        if cohort is None:
            return None
        with self._cond:
            lanes = self._cohorts.get(cohort.key, [])
            smallest = min(lanes, key=lambda c: c.joined, default=cohort)
            if smallest is cohort or cohort.joined - smallest.joined < 2:
                return cohort
            smallest.join(trainer)
            cohort.forget(trainer)  # counted in one cohort at a time, before the slow part
        cohort.leave(trainer)  # its tensors become its own again
        trainer.cohort = smallest
        return smallest

    def _round_threads(self, cohort: Cohort) -> int:
        """PyTorch threads for a round of `cohort`: one while other runs share the cores."""
        with self._cond:
            return 1 if len(self._holders) > cohort.joined else self.turns.n

    def _drop_cohort(self, cohort: Cohort) -> None:
        with self._cond:
            lanes = self._cohorts.get(cohort.key, [])
            if cohort in lanes and not cohort.joined:
                lanes.remove(cohort)
            if not lanes:
                self._cohorts.pop(cohort.key, None)

    @contextlib.contextmanager
    def _cohort_turn(self) -> Iterator[None]:
        """A cohort's round takes one of the turns, as one run's step does (it gives the turn
        back after each round: a round of thirty runs is long enough for one turn)."""
        with self.turns.turn():
            yield


def lower_priority(niceness: int | None = None) -> None:
    """Lower the CPU priority of the calling thread only (Linux: each thread has its own nice
    value, and threads it starts later, such as PyTorch's OpenMP workers, inherit it).
    Default: TRAINING_NICENESS, read at the call (a benchmark turns it off to compare)."""
    niceness = TRAINING_NICENESS if niceness is None else niceness
    if niceness <= 0 or not hasattr(os, "setpriority") or not hasattr(threading, "get_native_id"):
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + niceness))


class Watched:
    """What every run offers whoever shows it (the watcher's side, and the lease): a local
    Runner and a run on a cluster (playground/cluster.py RemoteRunner) alike. A subclass sets
    up its thread and calls `_watched()` first in its __init__."""

    def _watched(self, trainer: Trainer, pool: TrainingPool, lease: float | None) -> None:
        self.trainer = trainer
        self.pool = pool
        self.lease = lease
        self.latest: Report = trainer.report()
        self.error: Exception | None = None
        self.waiting = True  # for a slot of the pool (or a CPU of the cluster); False once training has begun
        self.stopped_by: str | None = None  # why it ended early: "stop", "lease" (no watcher)
        self.note: str | None = None  # something the user should know about where it trains
        self._touched = time.monotonic()
        self._back_in = 0.0  # how long the watcher said it would be away, at its last visit
        self._busy = 0  # watchers drawing a frame right now (they have not gone away)
        self._first_step = trainer.step_count  # a run's first step goes to the head of the line
        self._stop = threading.Event()
        self._done = threading.Event()
        self._stepped = threading.Event()  # its report shows a step (or it has ended)

    # -- the watcher's side ----------------------------------------------------------------------
    def touch(self, back_in: float = 0.0) -> None:
        """The watcher is still there: the run may go on for another `lease` seconds, plus
        `back_in`, the time the watcher says it will be away (a crowded pool's runs are shown
        less often)."""
        self._back_in = back_in
        self._touched = time.monotonic()

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """Around work the watcher does between two visits (drawing a frame), however long it
        takes: the run does not count it against the lease."""
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1
            self.touch()

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds; True when the run has ended."""
        return self._done.wait(timeout)

    def wait_stepped(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the run's first step (or its end)."""
        self._stepped.wait(timeout)

    @property
    def stepped(self) -> bool:
        """Whether its report shows a step of this run (or it has ended)."""
        return self._stepped.is_set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def stop(self, timeout: float = 5.0) -> None:
        """End the run (it was waiting or training) and wait for its thread."""
        self._end("stop")
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout)

    def _abandoned(self) -> bool:
        return self.lease is not None and not self._busy and time.monotonic() - self._touched > self.lease + self._back_in

    def _end(self, why: str) -> None:
        if not self._stop.is_set():
            self.stopped_by = why
        self._stop.set()
        self.trainer.stop()


class Runner(Watched):
    """Runs `trainer.run(**run_kwargs)` in a thread of its own, inside a slot of `pool`, for as
    long as its watcher keeps coming back (see the module's docstring)."""

    def __init__(self, trainer: Trainer, pool: TrainingPool | None = None, *, lease: float | None = LEASE,
                 report_every: float = 0.1, **run_kwargs):  # fmt: skip
        self._watched(trainer, pool or TrainingPool(1), lease)
        self._turn_since: float | None = None  # when this run's thread took the turn it holds
        self.thread = threading.Thread(target=self._work, args=(report_every, run_kwargs), daemon=True, name="playground-train")
        self.pool._register(self)
        self.thread.start()

    # -- the thread ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _step_turn(self) -> Iterator[None]:
        """Around each step: this run's turn among the pool's. A run keeps its turn for
        TURN_SLICE seconds of steps while others wait (for ever while none does), so a small
        model's runs change places every few steps, not after each one; it lets go at once when
        it is stopped or paused."""
        turns = self.pool.turns
        cohort = self.pool.balance_cohort(self.trainer)
        # decided once for this step (the trainer reads it): a run that waits for its cohort's
        # round must not hold a turn, which the cohort's thread needs
        self.trainer.via_cohort = cohort is not None and cohort.shared
        if self.trainer.via_cohort:
            self._let_go()
            yield
            return
        if self._turn_since is None:
            if not turns.acquire(self._stop, first=self.trainer.step_count == self._first_step):
                yield  # stopped while waiting: the trainer sees its stop flag and does not step
                return
            self._turn_since = time.monotonic()
        try:
            yield
        finally:
            first = self.trainer.step_count == self._first_step + 1  # a first step's turn is that step alone
            if self._stop.is_set() or self.trainer.paused or (turns.waiting and (first or time.monotonic() - self._turn_since >= TURN_SLICE)):
                self._let_go()

    def _let_go(self) -> None:
        if self._turn_since is not None:
            self._turn_since = None
            self.pool.turns.release()

    def _work(self, report_every, run_kwargs):
        lower_priority()
        give_up = _Either(self._stop, self._abandoned, lambda: self._end("lease"))
        try:
            if not self.pool.acquire(self, give_up):
                return
            self.waiting = False
            self.trainer.cohort = self.pool.join_cohort(self.trainer)
            try:
                crowded = lambda: self.pool.running > 1  # noqa: E731  (then each run steps on one thread)
                steps = self.trainer.run(report_every=report_every, around_step=self._step_turn, crowded=crowded, **run_kwargs)
                for report in steps:
                    self.latest = report
                    if report.step > self._first_step:
                        self._stepped.set()
                    if report.paused:
                        self._let_go()
                    if self._stop.is_set():  # also a stop that came before run() began
                        self.trainer.stop()
                    elif self._abandoned():
                        self._end("lease")
            finally:
                if self.trainer.cohort is not None:
                    self.trainer.cohort.leave(self.trainer)
                    self.trainer.cohort, self.trainer.via_cohort = None, None
                self._let_go()
                self.pool.release(self)
        except Exception as e:  # handed to whoever polls: the UI shows it
            self.error = e
        finally:
            if not self.latest.done:
                self.latest = self.trainer.report(done=True)
            self._done.set()
            self._stepped.set()


class _Either:
    """An Event-like flag for TrainingPool.acquire: set when `event` is, or when `check()` is
    true (then `on_true()` runs once)."""

    def __init__(self, event: threading.Event, check, on_true):
        self.event, self.check, self.on_true = event, check, on_true

    def is_set(self) -> bool:
        if self.event.is_set():
            return True
        if self.check():
            self.on_true()
            return True
        return False
