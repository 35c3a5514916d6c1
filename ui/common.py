"""What every tab shares: where checkpoints live and which errors are the user's to fix."""

from __future__ import annotations

import copy
import hashlib
import io
import os
from pathlib import Path

import gradio as gr
import numpy as np
from gradio.state_holder import SessionState, StateHolder
from PIL import Image

from playground.checkpoint import CheckpointError
from playground.data import DataError
from playground.explore import list_checkpoints
from playground.models import ConfigError

ROOT = Path(__file__).resolve().parent.parent
# shipped models in checkpoints/, shared ones in checkpoints/shared/, each session's own in
# checkpoints/sessions/<id>/ (listed to that session only)
CHECKPOINT_ROOT = Path(os.environ.get("PLAYGROUND_CHECKPOINTS", ROOT / "checkpoints"))

# Errors whose message tells the user what to change; anything else is a bug and is logged.
USER_ERRORS = (ConfigError, DataError, CheckpointError)


def user_error(message: str) -> gr.Error:
    """An error the user can fix, shown on their page and not logged: the log keeps its
    tracebacks for bugs (a class's typing mistakes buried them, 35 lines each)."""
    return gr.Error(message, print_exception=False)


def session_dir(request: gr.Request | None) -> Path:
    """This browser session's private checkpoint folder."""
    sid = getattr(request, "session_hash", None) or "local"
    safe = "".join(ch for ch in sid if ch.isalnum())[:32] or "local"
    return CHECKPOINT_ROOT / "sessions" / safe


def png_file(picture: np.ndarray, image: gr.Image) -> str:
    """`picture` as a PNG in `image`'s cache folder, named by its content, written by the
    calling thread: returned to Gradio as a path, it costs the server's event loop (which every
    user's requests wait for) nothing to encode. A fast PNG (compress level 1): these pictures
    are shown, not kept; Save and Export write their own."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(picture, dtype=np.uint8)).save(buf, format="PNG", compress_level=1)
    data = buf.getvalue()
    folder = Path(image.GRADIO_CACHE) / hashlib.sha256(data).hexdigest()[:32]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "samples.png"
    if not path.exists():
        tmp = folder / f".samples.{os.getpid()}.{id(buf)}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, path)  # whole or not at all: another frame may serve the same picture
    return str(path)


class PlotSeries:
    """Keeps a gr.LinePlot's legend and lines right when the set of series it shows changes
    (another model family, another panel's content).

    Gradio 6's LinePlot fixes its series (the colour scale's domain) when it rebuilds its chart,
    which only a change of title, colour map or other settings triggers, and the rebuild reads
    the data of the update before: series that are new since are neither drawn nor in the
    legend. So once an update has carried a new set of series, the next update changes the
    colour map (a spare entry on or off) to make the chart rebuild on data that has them.
    One per plot per session."""

    SPARE = "\u200b"  # an entry no series is called: it changes the map, colours nothing

    def __init__(self):
        self.previous: frozenset | None = None  # the series of the last update sent
        self.built: frozenset | None = None  # the series of the data the last rebuild read
        self.spare = False

    def color_map(self, frame, colors: dict[str, str]) -> dict[str, str]:
        series = frozenset(frame["series"].unique()) if frame is not None and len(frame) else frozenset()
        if self.previous is not None and self.previous != self.built:
            self.built, self.spare = self.previous, not self.spare
        self.previous = series
        return {**colors, **({self.SPARE: "#ffffff"} if self.spare else {})}


def plot_series(views: dict, name: str) -> PlotSeries:
    """The PlotSeries for plot `name`, kept in a per-session dict (Session.views)."""
    return views.setdefault("plot_series", {}).setdefault(name, PlotSeries())


SESSION_MODEL = "__session__"  # the model lists' value meaning "the model in the Train tab"


def model_choices(request: gr.Request | None) -> list[tuple[str, str]]:
    """What Explore and Inspect can show: the Train tab's model, then shipped, shared and the
    session's own checkpoints."""
    root = CHECKPOINT_ROOT
    items = [("The model in the Train tab", SESSION_MODEL)]
    for folder, tag in ((root, "shipped"), (root / "shared", "shared"), (session_dir(request), "yours")):
        items += [(f"{label} · {tag}", str(path)) for label, path in list_checkpoints(folder)]
    return items


SKIP = {"__type__": "update"}  # what gr.skip() returns, and what the page is sent for it


class Blocks(gr.Blocks):
    """gr.Blocks whose outputs left alone (`gr.skip()`) cost the server nothing.

    Gradio 6 takes an empty update for a change of the component's properties: it builds the
    component anew for the session, and its config (its API schema included), and keeps both in
    the session's state. That is 13 ms of the event loop for an Image a stream skips, and 15 ms
    for the 48 outputs of a student's idle check for the teacher's messages (30 students, every
    3 s: a seventh of a core), and a session kept a copy of each component it had skipped. Here
    an empty update goes out as it came (what Gradio would have sent: nothing changes on the
    page); the other outputs go through Gradio as before (tests/test_app.py)."""

    async def postprocess_data(self, block_fn, predictions, state):
        outputs = block_fn.outputs
        if block_fn.batch or block_fn.is_validator_function or len(outputs) < 1:
            return await super().postprocess_data(block_fn, predictions, state)
        if len(outputs) == 1:
            listed = [predictions]
        elif isinstance(predictions, dict) and predictions == SKIP:
            listed = [SKIP] * len(outputs)
        elif isinstance(predictions, dict) and predictions and all(isinstance(k, gr.blocks.Block) for k in predictions):
            listed = gr.blocks.convert_component_dict_to_list(list(outputs), predictions)
        elif isinstance(predictions, (list, tuple)) and len(predictions) == len(outputs):
            listed = list(predictions)
        else:  # Gradio's own checks say what is wrong
            return await super().postprocess_data(block_fn, predictions, state)
        kept = [i for i, (o, p) in enumerate(zip(outputs, listed)) if o.stateful or not (isinstance(p, dict) and p == SKIP)]
        if len(kept) == len(outputs):
            return await super().postprocess_data(block_fn, predictions, state)
        out = [dict(SKIP) for _ in outputs]
        if kept:
            some = copy.copy(block_fn)
            some.outputs = [outputs[i] for i in kept]
            done = await super().postprocess_data(some, listed[kept[0]] if len(kept) == 1 else [listed[i] for i in kept], state)
            for i, value in zip(kept, done):
                out[i] = value
        return out

    @property
    def state_holder(self) -> StateHolder:
        return self._state_holder

    @state_holder.setter
    def state_holder(self, holder: StateHolder) -> None:  # Gradio's server sets it (StateHolder.set_blocks)
        holder.__class__ = LeanStateHolder
        self._state_holder = holder


class _Unkept(dict):
    """A session's copy of every component's config, which Gradio 6 writes and never reads:
    nothing is kept. (Its only writer left is SessionState.__setitem__; LeanSession's two
    methods that read it before writing write nothing.)"""

    def __setitem__(self, key, value) -> None:
        pass


class LeanSession(SessionState):
    """Gradio's per-session state without its copy of the page's config.

    Gradio 6 (up to 6.31 at least) builds, for every new session, the config of each of the page's
    components (348 here: 19 ms of the event loop and 570 KB a session), then writes every value
    the session is sent into it (the curves' data, the galleries' files), and reads none of it
    back. A class of 30 with students coming and going held 70 sessions at once: 84 MB of small
    objects, and Python never gave back the memory they had used (bench/README.md, soak). The
    rest is Gradio's own (its __init__, less the copy; tests/test_app.py checks the two agree)."""

    def __init__(self, blocks: gr.Blocks):
        self.blocks_config = copy.copy(blocks.default_config)
        self.config_values = _Unkept()
        self.state_data = {}
        self._state_ttl = {}
        self.is_closed = False
        self.STATE_TTL_WHEN_CLOSED = 1 if os.getenv("GRADIO_IS_E2E_TEST", None) else 3600

    def _update_config(self, key: int) -> None:  # a change of a component's properties: only the copy
        pass

    def _update_value_in_config(self, key: int, value) -> None:  # a value sent: only the copy
        pass


class LeanStateHolder(StateHolder):
    """Gradio's holder of sessions, whose new sessions are `LeanSession`s."""

    def __getitem__(self, session_id: str) -> SessionState:
        if session_id not in self.session_data:
            self.session_data[session_id] = LeanSession(self.blocks)
        return super().__getitem__(session_id)
