"""The one streaming loop of the app: show a background training run until it ends.

The Train tab's Train button and the Inspect tab's lessons both stream a run this way. The loop
touches the run's lease each time Gradio asks for the next update, so a run whose stream Gradio
drops (a closed tab, a cancelled or dropped client) stops within `runs.LEASE` seconds (plus
the gap between two frames, which a crowded pool stretches) even when the generator's
`finally` never runs; when it does run (Stop, Reset, a cancel Gradio sees through), the run
stops at once. (A closed tab or a dropped connection also ends the session's run at once,
through the page's unload; its models stay a minute longer, in case the page comes back.)
"""

from __future__ import annotations

import datetime
import json
import os
import time
from collections.abc import Callable, Iterator

import gradio as gr

from playground.cluster import ClusterError
from playground.runs import Runner
from playground.session import Session
from playground.trainer import TrainingDiverged

from .common import user_error

MAX_GAP = 5.0  # seconds between two frames of a stream at most, however crowded the pool


def run_state(runner: Runner, finished: bool) -> str:
    if finished:
        return "stopped"
    if runner.waiting:
        return "waiting for a free training slot"
    return "paused" if runner.trainer.paused else "training"


def trace(event: str, **numbers) -> None:
    """One JSON line of what the server saw, appended to the file $PLAYGROUND_TRACE names
    (nothing when it is not set): what bench/bench_class.py reads for the server's own times,
    beside those its clients see."""
    path = os.environ.get("PLAYGROUND_TRACE")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"event": event, **numbers}) + "\n")


def stream(session: Session, runner: Runner, every: float, frame: Callable[[str, float], tuple], since: float | None = None) -> Iterator[tuple]:
    """Yield `frame(state, steps_per_sec)` at once, then every `every` seconds (times the
    pool's crowding once the run has stepped: a run that steps four times slower is shown four
    times less often, up to MAX_GAP) until the run ends, then once more; the run is stopped
    however the loop ends. A dropped stream ends its run within the lease plus that gap.
    `since` (a monotonic time: when Train was pressed) traces the first picture's delay."""
    first = True
    shown_step = False  # whether a frame drawn after the run's first step has gone out
    try:
        while True:
            # a crowded pool's runs are shown less often (the watcher says so, and the run waits
            # for it that much longer); until a frame has shown its first step, as soon as it has
            # one (a run that stepped while its first frame was drawn is shown again at once)
            gap = min(every * runner.pool.crowding(), MAX_GAP) if shown_step else every
            runner.touch(back_in=0.0 if first else gap)
            if first:
                finished = runner.done
            elif shown_step:
                finished = runner.wait(gap)
            else:
                runner.wait_stepped(gap)
                finished = runner.done
            if first and runner.note:
                gr.Warning(runner.note)
            first = False
            if runner.error is not None:
                if isinstance(runner.error, (TrainingDiverged, ClusterError)):
                    raise user_error(str(runner.error))
                raise runner.error
            stepped = runner.stepped  # before drawing: this frame shows a step of the run
            with runner.busy():  # drawing is the watcher at work, not a watcher gone
                out = frame(run_state(runner, finished), runner.latest.steps_per_sec)
            if since is not None and stepped and not shown_step:  # the run's first picture
                trace("first_picture", seconds=round(time.monotonic() - since, 3))
                since = None
            shown_step = shown_step or stepped
            yield out
            if finished:
                break
    finally:
        runner.stop()  # Stop, Reset, a closed tab or a cancelled client all end here
        # Gradio counts each call of this generator as a use of the session, the last ones after
        # a page went away too: the page is back only if it is heard from after this (ui.end_session)
        session.stream_ended = datetime.datetime.now()


def queued(session: Session, *values):
    """The validator of the events that train: it runs when the request joins the queue, so a
    Stop or Reset pressed while it waits can cancel it (Session.may_train). Every input is
    valid here (the settings are checked when the run starts, with a message)."""
    session.request_training()
    marks = [gr.validate(True, "")] * (1 + len(values))
    return marks if values else marks[0]
