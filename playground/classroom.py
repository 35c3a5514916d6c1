"""A class as its teacher sees it: every student's session on one server, in one place.

Plain Python, no Gradio. The app builds one `Classroom` when it runs with a teacher
(`python app.py --teacher user:password`); every browser session joins it, and the teacher's
console (ui/class_tab.py) reads and steers it:

- `wall()`: each student's name, model, step, state and the samples picture the student sees
  now (the picture the student's own Train tab last drew: the wall costs no sampling);
- `pause_all()`, `resume_all()`, `stop_all()`: every student's run at once;
- `push_settings()`, `push_lesson()`: a message to every student's page, which shows the
  settings in its Train tab (or opens the lesson) the next time it checks (`Session.take_message`);
- `results()`: a table that fills in as runs finish, with a figure that says how well each
  model learned its data (modes captured, the gap to the data's entropy, bits/dim).

Sessions are held weakly: a session that ends leaves the class by itself. The teacher's own
sessions are in the class too (their settings may be pushed) but not on the wall.
"""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from dataclasses import dataclass

import numpy as np

from .inspection.common import held_out_slice, snapshot
from .metrics import likelihood_metrics, model_mode_coverage
from .viz import samples_picture

STALE = 8.0  # seconds after which the wall draws a student's picture itself (see Classroom.wall)
NAME_LENGTH = 40  # characters of a student's name on the wall
RESULT_SAMPLES = 1000  # samples a finished run's result is measured on (points)


def clean_name(text: str | None) -> str:
    """A name as the wall shows it: printable, one line, at most NAME_LENGTH characters."""
    text = "".join(c if c.isprintable() else " " if c.isspace() else "" for c in (text or ""))
    return " ".join(text.split())[:NAME_LENGTH]


@dataclass(frozen=True)
class Message:
    """What the teacher sent to every student: settings (a TrainSettings) or a lesson's key."""

    serial: int
    kind: str  # "settings" | "lesson"
    payload: object
    sender: str = "your teacher"


class Classroom:
    def __init__(self):
        self._lock = threading.Lock()
        self._sessions: weakref.WeakValueDictionary[int, object] = weakref.WeakValueDictionary()
        self._numbers = itertools.count(1)
        self._serials = itertools.count(1)
        self._results: dict[tuple[int, int], str] = {}  # (student number, step) -> its result

    # -- who is here -----------------------------------------------------------------------------
    def join(self, session, *, teacher: bool = False) -> int:
        """Add a session to the class; returns its number (the wall's "student 7"). The app's
        sessions join through Session.join_class."""
        with self._lock:
            number = next(self._numbers)
            session.number, session.teacher = number, teacher
            self._sessions[number] = session
        return number

    def leave(self, session) -> None:
        with self._lock:
            self._sessions.pop(getattr(session, "number", None), None)
            self._results = {k: v for k, v in self._results.items() if k[0] != session.number}

    def sessions(self, *, teachers: bool = False) -> list:
        """The open sessions in the order they joined (students only, unless `teachers`)."""
        with self._lock:
            found = [s for _, s in sorted(self._sessions.items())]
        return [s for s in found if not s.closed and (teachers or not s.teacher)]

    def student(self, number: int):
        """The open student session with this number (None: gone, or never a student)."""
        s = self._sessions.get(number)
        return None if s is None or s.closed or s.teacher else s

    # -- what the teacher sees -------------------------------------------------------------------
    def wall(self, stale: float | None = STALE) -> list[dict]:
        """One entry per student: number, name, family, data, step, state, picture (an RGB
        uint8 array: what the student's Train tab shows now). A picture older than `stale`
        seconds of a model that has stepped since (a run streamed by a lesson, a page in the
        background) is drawn here, from the model as it is."""
        out = []
        for s in self.sessions():
            t = s.trainer
            shown = s.shown
            if t is not None and t.step_count and stale is not None and stale_picture(shown, t.step_count, stale):
                s.show(t.step_count, picture_of(t))
                shown = s.shown
            out.append({
                "number": s.number,
                "name": s.name or f"student {s.number}",
                "family": t.model.family if t is not None else None,
                "data": t.data.name if t is not None else None,
                "step": t.step_count if t is not None else 0,
                "state": state_of(s),
                "picture": shown[1] if shown is not None and t is not None else None,
            })  # fmt: skip
        return out

    def counts(self) -> dict[str, int]:
        """How many students are in each state, and in all ("students")."""
        states = [state_of(s) for s in self.sessions()]
        return {"students": len(states), **{k: states.count(k) for k in ("training", "waiting", "paused", "stopped", "no model")}}

    # -- steering everyone -----------------------------------------------------------------------
    def pause_all(self) -> int:
        """Pause every student's running training; returns how many were paused."""
        n = 0
        for s in self.sessions():
            t = s.trainer
            if t is not None and t.running and not t.paused:
                t.pause()
                n += 1
        return n

    def resume_all(self) -> int:
        n = 0
        for s in self.sessions():
            t = s.trainer
            if t is not None and t.running and t.paused:
                t.resume()
                n += 1
        return n

    def stop_all(self) -> int:
        """Stop every student's run, running or still waiting in line (their models stay)."""
        n = 0
        for s in self.sessions():
            running = s.runner is not None and not s.runner.done
            s.stop()
            n += running
        return n

    def push_settings(self, settings, sender: str = "your teacher", skip=None) -> int:
        """Show these settings (a TrainSettings) in every student's Train tab but `skip`'s (the
        student whose settings they are); returns how many students the message went to."""
        return self._push("settings", settings, sender, skip)

    def push_lesson(self, key: str, sender: str = "your teacher") -> int:
        from . import lessons

        lessons.get(key)  # an unknown lesson fails here, for the teacher, not on 30 pages
        return self._push("lesson", key, sender)

    def _push(self, kind: str, payload, sender: str, skip=None) -> int:
        with self._lock:
            message = Message(next(self._serials), kind, payload, sender)
        students = [s for s in self.sessions() if s is not skip]
        for s in students:
            s.messages.append(message)
        return len(students)

    # -- results ---------------------------------------------------------------------------------
    def results(self) -> list[dict]:
        """One row per student with a model that has trained: the run's result once it has
        stopped or paused (measured once per step count, on a copy of the model), "training"
        while it runs."""
        rows = []
        for s in self.sessions():
            t = s.trainer
            if t is None or t.step_count == 0:
                continue
            state = state_of(s)
            key = (s.number, t.step_count)
            if state in ("training", "waiting"):
                result = self._results.get(key, "training…")
            else:
                result = self._results.get(key)
                if result is None:
                    result = self._results[key] = result_of(t)
            rows.append({
                "student": s.name or f"student {s.number}", "family": t.model.family, "data": t.data.name,
                "steps": t.step_count, "seconds": round(t.elapsed, 1), "state": state, "result": result,
            })  # fmt: skip
        return rows


def state_of(session) -> str:
    """training | waiting (for a place to train) | paused | stopped | no model."""
    t, r = session.trainer, session.runner
    if t is None:
        return "no model"
    if r is not None and not r.done and r.trainer is t:
        if r.waiting:
            return "waiting"
        return "paused" if t.paused else "training"
    return "stopped"


def result_of(trainer) -> str:
    """How well a model learned its data, in a few words: modes captured (points with known
    modes), the held-out NLL's gap to the data's entropy (likelihood models of points), held-out
    bits/dim (likelihood models of images), else the latest loss parts."""
    model, last, _ = snapshot(trainer)
    data = trainer.data
    parts = []
    if data.kind == "points" and data.modes is not None:
        cov = model_mode_coverage(model, data, RESULT_SAMPLES, seed=0)
        parts.append(f"{cov['modes']}/{cov['n_modes']} modes, {cov['high_quality']:.0%} on a mode")
    if hasattr(model, "log_prob") and not hasattr(model, "encode"):
        held = likelihood_metrics(model, held_out_slice(data, 2000), entropy=data.entropy)
        if "gap_to_floor" in held:
            parts.append(f"NLL gap {held['gap_to_floor']:.3f} nats")
        elif "bits_per_dim" in held:
            parts.append(f"{held['bits_per_dim']:.3f} bits/dim")
    if not parts:
        numbers = {k: v for k, v in last.items() if isinstance(v, float) and np.isfinite(v)}
        parts = [f"{trainer.model.series.get(k, k)} {v:.3g}" for k, v in list(numbers.items())[:2]]
    return "; ".join(parts) or "-"


def stale_picture(shown: tuple | None, step: int, stale: float) -> bool:
    """Whether a shown (step, picture, when) is missing, or older than `stale` seconds and of
    an earlier step."""
    return shown is None or (shown[0] != step and time.monotonic() - shown[2] > stale)


def picture_of(trainer) -> np.ndarray:
    """The samples picture of a trainer's model now, as its Train tab draws it."""
    from .session import training_canvas  # session.py imports this module

    samples = trainer.progress_samples()
    canvas = training_canvas(trainer)
    return canvas.draw(samples) if canvas is not None else samples_picture(samples)
