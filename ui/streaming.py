"""The one streaming loop of the app: show a background training run until it ends.

The Train tab's Train button and the Inspect tab's lessons both stream a run this way. The loop
touches the run's lease each time Gradio asks for the next update, so a run whose stream Gradio
drops (a closed tab, a cancelled or dropped client) stops within `runs.LEASE` seconds even when
the generator's `finally` never runs; when it does run (Stop, Reset, a cancel Gradio sees
through), the run stops at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import gradio as gr

from playground.runs import Runner
from playground.session import Session
from playground.trainer import TrainingDiverged


def run_state(runner: Runner, finished: bool) -> str:
    if finished:
        return "stopped"
    if runner.waiting:
        return "waiting for a free training slot"
    return "paused" if runner.trainer.paused else "training"


def stream(runner: Runner, every: float, frame: Callable[[str, float], tuple]) -> Iterator[tuple]:
    """Yield `frame(state, steps_per_sec)` at once, then every `every` seconds (times the
    pool's crowding: a run that steps four times slower is shown four times less often) until
    the run ends, then once more; the run is stopped however the loop ends."""
    first = True
    try:
        while True:
            runner.touch()
            finished = runner.done if first else runner.wait(every * runner.pool.crowding())
            first = False
            if runner.error is not None:
                if isinstance(runner.error, TrainingDiverged):
                    raise gr.Error(str(runner.error))
                raise runner.error
            with runner.busy():  # drawing is the watcher at work, not a watcher gone
                out = frame(run_state(runner, finished), runner.latest.steps_per_sec)
            yield out
            if finished:
                break
    finally:
        runner.stop()  # Stop, Reset, a closed tab or a cancelled client all end here


def queued(session: Session, *values):
    """The validator of the events that train: it runs when the request joins the queue, so a
    Stop or Reset pressed while it waits can cancel it (Session.may_train). Every input is
    valid here (the settings are checked when the run starts, with a message)."""
    session.request_training()
    marks = [gr.validate(True, "")] * (1 + len(values))
    return marks if values else marks[0]
