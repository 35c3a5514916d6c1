"""The Train tab: pick a model and data, train it live, step through a GAN's procedure, save.

Handlers are thin: widget values -> TrainSettings -> playground.session -> pictures and frames.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import re
import tempfile
import time
from pathlib import Path

import gradio as gr

from playground.classroom import clean_name
from playground.data import (
    BUILTIN_COLOUR,
    BUILTIN_IMAGES,
    BUILTIN_POINTS,
    IMAGE_SIZE_RANGE,
    DataError,
    describe,
    load_data,
)
from playground.drawing import Drawing
from playground.links import Link, query_from_settings, settings_from_query
from playground.models import (
    DATA_FIELDS,
    FAMILIES,
    ConfigError,
    Setting,
    default_batch_size,
    default_config,
    family_of,
    settings_for,
)
from playground.session import (
    COLOURS,
    FLOOR,
    Session,
    TrainSettings,
    curve_frames,
    default_side,
    same_data,
    status_text,
    training_canvas,
)
from playground.trainer import TrainingDiverged
from playground.viz import samples_picture

from . import common
from .common import USER_ERRORS, plot_series, png_file, session_dir, user_error
from .streaming import queued, stream

UPLOAD = "upload"  # the dataset choice that means "the file uploaded below"
DRAW = "draw"  # the dataset choice that means "the points drawn on the plane below"
DRAWINGS = Path(tempfile.gettempdir()) / "playground-drawings"  # drawn points as CSV files, one per session and version
IMAGE_SIDES = (16, 28, 32, 64)  # the image sides the tab offers (data.IMAGE_SIZE_RANGE allows more)
DEFAULT_FAMILY, DEFAULT_DATA = "gan", "ring8"  # what the tab shows first
TRAINING_ROW, ARCH_ROW = "training", "arch"  # rows that also hold the tab's own controls
REPORT_EVERY = 0.3  # seconds between live updates (each sends only the outputs that changed)
LEAN_FRAMES = True  # False: a stream's frames re-send every output (the benchmark's reference)
CURVES_EVERY = 1.0  # seconds between the curves' live updates (times the pool's crowding): the
# server's costliest output, and a run in a crowded pool steps that many times slower


# -- the controls, from the families' declared settings ------------------------------------------
def shown(family: str) -> dict[str, Setting]:
    """The settings of a family that the tab shows, by name, in the family's order."""
    return {k: s for k, s in settings_for(family).items() if s.shown}


def controls() -> dict[str, Setting]:
    """One control per setting name any family shows, built from the first family's declaration
    of it but taking what any family allows (the widest range, every choice), so that Gradio's
    own checks never refuse a value some family accepts; each family's declaration narrows it
    when that family is picked, and its validation says what that family allows. Raises when two
    families give one name different kinds of control (one component cannot be both)."""
    out: dict[str, Setting] = {}
    for family in FAMILIES:
        for k, s in shown(family).items():
            if k not in out:
                out[k] = s
                continue
            if out[k].widget != s.widget:
                raise TypeError(f"setting {k!r} is a {out[k].widget} in one family and a {s.widget} in {family}: give it another name")
            was = out[k]
            if s.choices:
                out[k] = dataclasses.replace(was, choices=tuple(dict.fromkeys((*was.choices, *s.choices))))
            elif s.lo is not None:
                out[k] = dataclasses.replace(was, lo=min(was.lo, s.lo), hi=max(was.hi, s.hi))
    return out


def rows() -> dict[str, list[str]]:
    """The tab's rows of settings, top to bottom, by row name: the architecture's first, the
    training's (lr, batch size, seed) last, the others in the order the families declare them."""
    out: dict[str, list[str]] = {ARCH_ROW: []}
    for family in FAMILIES:
        for k, s in shown(family).items():
            if not any(k in r for r in out.values()):
                out.setdefault(s.row or k, []).append(k)
    out[TRAINING_ROW] = out.pop(TRAINING_ROW, [])
    return out


def live_fields() -> tuple[str, ...]:
    """The settings sent to a running training as they change (live in some family)."""
    return tuple(dict.fromkeys(k for f in FAMILIES for k, s in settings_for(f).items() if s.live and s.shown))


def images_only(family: str) -> bool:
    return "points" not in family_of(family).data_kinds


def label_of(s: Setting) -> str:
    """The label, saying when a change reaches a running training ("β (KL weight; live)")."""
    if not s.live:
        return s.label
    return f"{s.label[:-1]}; live)" if s.label.endswith(")") else f"{s.label} (live)"


def info_of(s: Setting) -> str:
    """The line under a control: its help, or a number box's allowed range ("" clears it)."""
    if s.help:
        return s.help
    return f"{s.lo:g} to {s.hi:g}" if s.widget == "number" else ""


def visible_on(family: str, points: bool) -> dict[str, Setting]:
    """The family's controls the tab shows for this kind of data: a choice that has one option
    on it (an MLP on points) is made, not offered."""
    return {k: s for k, s in shown(family).items() if len(s.choices_for(points)) != 1}


def control_props(s: Setting, value, points: bool) -> dict:
    """The properties of a control that show this family's declaration of a setting."""
    props = dict(label=label_of(s), info=info_of(s), value=value)
    if s.widget == "slider":
        props.update(minimum=s.lo, maximum=s.hi, step=s.step)
    elif s.widget == "radio":
        props["choices"] = list(s.choices_for(points))
    elif s.widget == "number" and s.kind is float:
        props["step"] = nudge(value if isinstance(value, (int, float)) else s.default)
    return props


def nudge(value: float) -> float:
    """The step of a number box for a float: a tenth of the value's order of magnitude (0.0005:
    0.00001), what its arrows add. At Gradio's default step of 1, one press took a learning rate
    of 0.0005 to 1 (the run diverged), and the browser called 0.0005 an invalid value."""
    return 10.0 ** (math.floor(math.log10(abs(value))) - 1) if value and math.isfinite(value) else 0.01


def make_control(s: Setting, value, visible: bool) -> gr.components.Component:
    """The control of a setting, offering every choice it has (so that the API takes any of
    them; the tab narrows them to what the data allows as it shows a family)."""
    kind = {"slider": gr.Slider, "number": gr.Number, "radio": gr.Radio, "checkbox": gr.Checkbox}[s.widget]
    return kind(elem_id=s.name, visible=visible, **control_props(s, value, points=False))


def data_choices() -> list[tuple[str, str]]:
    short = {n: re.split(r"[:;]", describe(n))[0].rstrip(". ") for n in BUILTIN_POINTS + BUILTIN_IMAGES}
    items = [(f"{n} · {short[n]}", n) for n in BUILTIN_POINTS + BUILTIN_IMAGES]
    return items + [("your file (upload below)", UPLOAD), ("your own points (click the plane below)", DRAW)]


def _is_points(data: str, upload: str | None) -> bool:
    if data == DRAW:
        return True
    if data == UPLOAD:
        return bool(upload) and Path(upload).suffix.lower() == ".csv"
    return data in BUILTIN_POINTS


def settings_from(v: dict) -> TrainSettings:
    """Widget values (by name) -> TrainSettings. Range checks happen in the config classes."""
    family = v["family"]
    data = v["data"]
    if data == UPLOAD:
        if not v.get("upload"):
            raise DataError("choose a file to upload first (.zip or folder of images, .npz, or a .csv of x,y points)")
        data = v["upload"]
    model = {k: v[k] for k in shown(family)}
    colour = v.get("colour") or "auto"
    if colour not in COLOURS:
        raise ConfigError(f"colour must be one of {', '.join(COLOURS)}; got {colour!r}")
    return TrainSettings(
        family=family, data=data, image_size=_int("image size", v["image_size"]),
        batch_size=_int("batch size", v["batch_size"]), seed=_int("seed", v["seed"]), model=model,
        channels=COLOURS[colour],
    )  # fmt: skip


def _int(name, value) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not number.is_integer():
        raise ConfigError(f"{name} must be a whole number; got {value!r}")
    return int(number)


PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")


def series_colors(parts, series: dict[str, str], floor: bool = False) -> dict[str, str]:
    """A colour for each curve of a panel (`parts`, named in the legend by `series`), given with
    every update: a LinePlot otherwise keeps the legend of the first family it showed, and draws
    nothing for another family's series."""
    colors = {series[k]: c for k, c in zip(parts, PALETTE)}
    if floor and "nll" in parts:
        colors[FLOOR] = "#888888"
    return colors


def _is_colour(data: str, upload: str | None) -> bool:
    """Whether the chosen pictures are in colour: a builtin colour set, or an upload whose
    first pictures are (a peek at 16 of them: the family's colour defaults depend on it)."""
    if data != UPLOAD:
        return data in BUILTIN_COLOUR
    if not upload or _is_points(data, upload):
        return False
    try:
        return load_data(upload, n=16, image_size=8).x.shape[1] == 3
    except DataError:
        return False  # Train will say what is wrong with the file


def shape_for(family: str, points: bool, colour: bool = False) -> tuple[int, ...]:
    """A shape of the data's kind: points (when the family models them), grey or colour images."""
    return (2,) if points and not images_only(family) else (3 if colour else 1, 28, 28)


def defaults_for(family: str, points: bool, colour: bool = False) -> dict:
    """The values of a family's shown settings for points, grey images or colour images."""
    cfg = default_config(family, shape_for(family, points, colour)).to_dict()
    return {k: cfg[k] for k in shown(family)}


def phases(family: str) -> tuple[str, ...]:
    """The partial steps a family has (a GAN's D and G steps): the tab shows their buttons."""
    return family_of(family).phases


def with_names(fn, names: list[str]):
    """`fn(session, *values)` with a signature naming each value, so the API has named
    parameters (/train takes family=..., data=..., lr=...) instead of param_1, param_2...
    A generator stays a generator: Gradio streams only those."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def wrapper(*args):
            yield from fn(*args)

    else:

        @functools.wraps(fn)
        def wrapper(*args):
            return fn(*args)

    params = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in ["session", *names]]
    wrapper.__signature__ = inspect.Signature(params)
    return wrapper


class TrainTab:
    """Builds the tab inside the current gr.Blocks and wires its events."""

    def __init__(self, session: gr.State, max_trainings: int, in_class: bool = False):
        self.session = session
        self.max_trainings = max_trainings
        self.in_class = in_class  # the app has a teacher: students give a name for the wall
        self.build()
        self.wire()

    # -- layout ----------------------------------------------------------------------------------
    def build(self):
        c: dict[str, gr.components.Component] = {}
        self.controls, self.rows = controls(), rows()
        self.live_fields = live_fields()
        first = defaults_for(DEFAULT_FAMILY, points=True)
        first_shown = visible_on(DEFAULT_FAMILY, points=True)
        fallback = {k: v for f in reversed(FAMILIES) for k, v in defaults_for(f, True).items()}
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=300):
                family_choices = [(cls.label, name) for name, cls in FAMILIES.items()]
                c["family"] = gr.Radio(family_choices, value=DEFAULT_FAMILY, label="Model family", elem_id="family")
                c["data"] = gr.Dropdown(data_choices(), value=DEFAULT_DATA, label="Data", elem_id="data")
                c["upload"] = gr.File(label="Your data: .zip of images, .npz (x: uint8 N×H×W[×C]), or .csv of x,y", file_types=[".zip", ".npz", ".csv"], type="filepath", visible=False, elem_id="upload")
                with gr.Group(visible=False) as self.draw_box:
                    self.draw_view = gr.Image(value=Drawing().picture(), label="Click to put down points; Train trains on them", format="png", type="numpy",
                                              interactive=False, buttons=[], elem_id="draw-plane")  # fmt: skip
                    with gr.Row():
                        self.draw_n = gr.Slider(10, 500, value=100, step=10, label="Points per click", elem_id="draw-n")
                        self.draw_spread = gr.Slider(0.02, 1.0, value=0.2, step=0.02, label="Spread (σ)", elem_id="draw-spread")
                    with gr.Row():
                        self.draw_info = gr.Markdown("No points yet.", elem_id="draw-info")
                        self.draw_undo = gr.Button("Undo", size="sm", min_width=60, elem_id="draw-undo")
                        self.draw_clear = gr.Button("Clear", size="sm", min_width=60, elem_id="draw-clear")
                self.knob_rows: dict[str, gr.Row] = {}  # rows of settings: hidden when none is shown
                for row, names in self.rows.items():
                    with gr.Row(visible=row == TRAINING_ROW or any(k in first_shown for k in names)) as self.knob_rows[row]:
                        for k in names:
                            c[k] = make_control(self.controls[k], first.get(k, fallback[k]), visible=k in first_shown)
                        if row == ARCH_ROW:
                            c["image_size"] = gr.Dropdown(list(IMAGE_SIDES), value=28, label="Image side (px)", visible=False, elem_id="image-size",
                                                          allow_custom_value=True, info=f"or type one from {IMAGE_SIZE_RANGE[0]} to {IMAGE_SIZE_RANGE[1]}")  # a link's, say
                            c["colour"] = gr.Radio([("as the data", "auto"), ("grey", "grey")], value="auto", label="Colour", visible=False, elem_id="colour")
                        if row == TRAINING_ROW:
                            c["batch_size"] = gr.Slider(8, 512, value=128, step=8, label="Batch size")
                            c["seed"] = gr.Number(value=0, precision=0, minimum=0, label="Seed")
            with gr.Column(scale=2, min_width=400):
                self.name_box = gr.Textbox(label="Your name (your teacher sees it beside your samples)", max_length=40, visible=self.in_class, elem_id="student-name")
                with gr.Row():
                    self.train_btn = gr.Button("▶ Train", variant="primary", elem_id="train")
                    self.pause_btn = gr.Button("Pause", elem_id="pause")
                    self.resume_btn = gr.Button("Resume", elem_id="resume")
                    self.stop_btn = gr.Button("Stop", variant="stop", elem_id="stop")
                with gr.Row():
                    self.reset_btn = gr.Button("Reset", size="sm", min_width=60, elem_id="reset")
                    self.step_btn = gr.Button("Step", size="sm", min_width=60, elem_id="step")
                    self.d_btn = gr.Button("D step", size="sm", min_width=60, elem_id="dstep")
                    self.g_btn = gr.Button("G step", size="sm", min_width=60, elem_id="gstep")
                    self.dg_btn = gr.Button("D+G step", size="sm", min_width=60, elem_id="dgstep")
                self.status = gr.Markdown(status_text(None), elem_id="status")
                with gr.Row():
                    self.samples = gr.Image(label="Samples", format="png", type="numpy", interactive=False, elem_id="samples", elem_classes=["pixelated"], height=420)
                    with gr.Column():
                        (t1, _), (t2, _) = family_of(DEFAULT_FAMILY).curves
                        self.curve1 = gr.LinePlot(x="step", y="value", color="series", title=t1, height=200, elem_id="curve1")
                        self.curve2 = gr.LinePlot(x="step", y="value", color="series", title=t2, height=200, elem_id="curve2")
                with gr.Accordion("Save or load a checkpoint", open=False):
                    with gr.Row():
                        self.ckpt_name = gr.Textbox(value="my-model", label="Name", scale=2)
                        self.share = gr.Checkbox(value=False, label="Share with everyone on this server")
                        self.save_btn = gr.Button("Save", elem_id="save")
                    self.download = gr.File(label="Download", interactive=False, elem_id="download")
                    self.load_file = gr.File(label="Load a .safetensors checkpoint to continue training", file_types=[".safetensors"], type="filepath", elem_id="load")
                with gr.Accordion("Share these settings as a link", open=False), gr.Row():
                    self.link_btn = gr.Button("🔗 Link to these settings", size="sm", scale=0, min_width=200, elem_id="make-link")
                    self.link = gr.Textbox(label="Opens the app with these settings (a builtin data set only)", buttons=["copy"], interactive=False, elem_id="link")
        self.c = c
        self.outputs = [self.status, self.samples, self.curve1, self.curve2]

    # -- events ----------------------------------------------------------------------------------
    def wire(self):
        c, S = self.c, self.session
        self.names = list(c)
        settings_inputs = [S, *c.values()]  # handlers get (session, *values) in self.names order
        self.phase_btns = [self.d_btn, self.g_btn, self.dg_btn]
        self.knobs = list(self.controls)
        family_outputs = [c["data"], c["image_size"], c["colour"], c["upload"], self.draw_box, c["batch_size"], *self.phase_btns, *[c[k] for k in self.knobs], *self.knob_rows.values()]
        picked = [c["family"], c["data"], c["upload"], c["colour"]]
        for trigger in (c["family"].input, c["upload"].upload, c["colour"].input):
            trigger(self.on_family_or_data, picked, family_outputs, api_name=False, show_progress="hidden")
        c["data"].input(self.on_data, picked[:3], family_outputs, api_name=False, show_progress="hidden")
        c["upload"].upload(self.on_upload_data, [c["family"], c["upload"]], c["data"], api_name=False)
        draw_out = [self.draw_view, self.draw_info]
        self.draw_view.select(self.on_draw, [S, self.draw_n, self.draw_spread], draw_out, api_name=False)
        self.draw_undo.click(self.on_draw_edit("undo"), S, draw_out, api_name=False)
        self.draw_clear.click(self.on_draw_edit("clear"), S, draw_out, api_name=False)

        self.train_event = self.train_btn.click(
            with_names(self.on_train, self.names), settings_inputs, self.outputs, api_name="train",
            concurrency_id="train", concurrency_limit=self.max_trainings, validator=with_names(queued, self.names),
        )  # fmt: skip
        self.pause_btn.click(self.on_pause, S, self.status, api_name="pause", concurrency_limit=None)
        self.resume_btn.click(self.on_resume, S, self.status, api_name="resume", concurrency_limit=None)
        # Stop does not cancel the stream: the run stops, and the stream shows "stopped" and ends
        # (a Train still queued is voided by Session.may_train when its turn comes).
        self.stop_btn.click(self.on_stop, S, None, api_name="stop", concurrency_limit=None)
        self.reset_btn.click(self.on_reset, S, self.outputs, api_name="reset", cancels=[self.train_event], concurrency_limit=None)
        for btn, phase, name in ((self.step_btn, "step", "step"), (self.d_btn, "d", "d_step"), (self.g_btn, "g", "g_step"), (self.dg_btn, "dg", "dg_step")):
            btn.click(with_names(self.stepper(phase), self.names), settings_inputs, self.outputs, api_name=name, concurrency_id="step", concurrency_limit=4)
        for k in self.live_fields:
            c[k].input(self.on_live, [S, *[c[f] for f in self.live_fields]], None, api_name=f"set_{k}", concurrency_limit=None, show_progress="hidden", trigger_mode="always_last")
        # .change, not .input: a pasted or autofilled name fires no input event, and never reached the wall
        self.name_box.change(self.on_name, [S, self.name_box], None, api_name="name", concurrency_limit=None, show_progress="hidden", trigger_mode="always_last")
        self.save_btn.click(self.on_save, [S, self.ckpt_name, self.share], [self.download, self.status], api_name="save")
        # the server makes the query string; the page puts its own address in front of it
        self.link_btn.click(with_names(self.on_link_query, self.names), settings_inputs, self.link, api_name="link").then(
            None, self.link, self.link, js="(q) => q ? location.origin + location.pathname + '?' + q : q"
        )
        self.loaded_controls = ["family", "data", "image_size", "colour", "batch_size", "seed", *self.knobs]
        self.load_file.upload(
            self.on_load, [S, self.load_file],
            [*self.outputs, *self.settings_outputs()], api_name="load",
        )  # fmt: skip

    def values(self, values: tuple) -> dict:
        return dict(zip(self.names, values))

    def on_data(self, family, data, upload) -> dict:
        """Other data picked: its colours as they are (Colour back to "as the data") and, for a
        builtin colour set, its own image side (32 px); then as for a family picked."""
        updates = self.on_family_or_data(family, data, upload, "auto")
        visible = updates[self.c["colour"]].get("visible")
        updates[self.c["colour"]] = gr.update(value="auto", visible=visible)
        if data in BUILTIN_COLOUR:
            updates[self.c["image_size"]] = gr.update(value=default_side(data), visible=visible)
        return updates

    # Drawing 2-D data ------------------------------------------------------------------------
    @staticmethod
    def drawing(session: Session) -> Drawing:
        return session.views.setdefault("drawing", Drawing())

    def draw_frame(self, drawing: Drawing) -> tuple:
        n = len(drawing.points)
        return drawing.picture(), (f"**{n:,} points** in {len(drawing.blobs)} blobs: press Train." if n else "No points yet.")

    def on_draw(self, session: Session, n, spread, evt: gr.SelectData):
        drawing = self.drawing(session)
        x, y = drawing.canvas().to_plane(*evt.index)
        try:
            drawing.add(x, y, int(n), float(spread))
        except DataError as e:
            raise user_error(str(e)) from None
        return self.draw_frame(drawing)

    def on_draw_edit(self, what: str):
        def edit(session: Session):
            drawing = self.drawing(session)
            getattr(drawing, what)()
            return self.draw_frame(drawing)

        return edit

    @staticmethod
    def on_upload_data(family, upload):
        """An upload selects itself as the data, unless it is points for an images-only family
        (on_family_or_data has switched that to digits and said so)."""
        return "digits" if images_only(family) and _is_points(UPLOAD, upload) else UPLOAD

    def on_family_or_data(self, family, data, upload, colour="auto") -> dict:
        """{component: update} for a family picked, data chosen or Colour set (Gradio's dict
        form: no order to keep in step with the outputs list): the family's defaults for this
        data as it will be trained (grey defaults when grey is asked for)."""
        c = self.c
        if images_only(family) and _is_points(data, upload):
            data = "digits"  # this family models images only: show it on the shipped digits
            gr.Info(f"{family_of(family).label} models are for images: switched the data to digits.")
        points = _is_points(data, upload)
        colour = not points and colour != "grey" and _is_colour(data, upload)
        updates = {c["data"]: gr.update(value=data), c["upload"]: gr.update(visible=data == UPLOAD), self.draw_box: gr.update(visible=data == DRAW),
                   c["batch_size"]: gr.update(value=default_batch_size(family, shape_for(family, points, colour)))}  # fmt: skip
        updates.update({c[k]: gr.update(visible=not points) for k in ("image_size", "colour")})
        updates.update({btn: gr.update(visible=bool(phases(family))) for btn in self.phase_btns})
        return {**updates, **self.control_updates(family, points, defaults_for(family, points, colour))}

    def control_updates(self, family: str, points: bool, values: dict) -> dict:
        """{component: update} that shows a family's controls with these values (its
        declarations' labels, ranges and choices; the other families' controls hidden), and
        its rows."""
        mine, offered = shown(family), visible_on(family, points)
        updates = {}
        for k in self.knobs:
            if k not in mine:
                updates[self.c[k]] = gr.update(visible=False)
                continue
            value = values.get(k, mine[k].default)
            choices = mine[k].choices_for(points)
            if choices and value not in choices:
                value = choices[0]  # the data's kind allows fewer (an MLP on points)
            if k in offered:
                updates[self.c[k]] = gr.update(visible=True, **control_props(mine[k], value, points))
            else:
                updates[self.c[k]] = gr.update(visible=False, value=value)
        return {**updates, **self.row_updates(family, points)}

    def row_updates(self, family: str, points: bool) -> dict:
        """Rows of settings show when one of theirs does (the first also holds the image side,
        the last the batch size and seed)."""
        offered = visible_on(family, points)
        visible = {row: any(k in offered for k in names) for row, names in self.rows.items()}
        visible[ARCH_ROW] = visible[ARCH_ROW] or not points
        visible[TRAINING_ROW] = True
        return {self.knob_rows[row]: gr.update(visible=visible[row]) for row in self.rows}

    # The training stream ---------------------------------------------------------------------
    def settings(self, session: Session, values: tuple) -> TrainSettings:
        """The widgets' settings, plus the model settings the tab does not show (g_layers,
        layers, beta1...) taken from the session's model when it is on the same data, so that
        a lesson's or a loaded checkpoint's model is continued rather than replaced."""
        v = self.values(values)
        session.adopt(v.get("upload"))
        if v.get("data") == DRAW:  # the drawn points, as the CSV file an upload would be
            path = self.drawing(session).to_csv(DRAWINGS)
            session.adopt(path)
            v = {**v, "data": UPLOAD, "upload": str(path)}
        settings = settings_from(v)
        t = session.trainer
        if t is not None and t.model.family == settings.family and same_data(t, settings.data_args()):
            hidden = {k: v for k, v in t.model.config.to_dict().items() if k not in shown(settings.family) and k not in DATA_FIELDS}
            settings.model = {**hidden, **settings.model}
        return settings

    def on_train(self, session: Session, *values):
        session.join_class()
        if not session.may_train():  # Stop or Reset was pressed while this waited in the queue
            yield self.frame(session, self.view(session), "stopped", 0.0)
            return
        try:
            trainer, new = session.prepare(self.settings(session, values))
        except USER_ERRORS as e:
            raise user_error(str(e)) from None
        view = self.view(session)
        warning = getattr(trainer.model, "data_warning", lambda shape: None)(trainer.data.sample_shape)
        if warning and new:  # once, when the model is made
            gr.Warning(warning)
        runner = session.runner
        if trainer.running and runner is not None and runner.trainer is trainer and not runner.done:
            trainer.resume()  # already training (a lesson, another tab): show that run
        else:
            try:
                runner = session.start(trainer)
            except USER_ERRORS as e:
                raise user_error(str(e)) from None
        draw = lambda state, rate: self.frame(session, view, state, rate, live=LEAN_FRAMES and state != "stopped")  # noqa: E731
        yield from stream(session, runner, REPORT_EVERY, draw, since=session.requested_at)

    def view(self, session: Session) -> dict:
        """What one stream remembers between its frames: the canvas, and the step it began at."""
        t = session.trainer
        return {"canvas": None if t is None else training_canvas(t), "start": None if t is None else t.step_count}

    def frame(self, session: Session, view: dict, state: str, rate: float, live: bool = False):
        """The status, samples picture and two curves. A `live` frame (one of a stream's, before
        its last) sends only what changed since the stream's previous frame, and the curves at
        most every CURVES_EVERY seconds (times the pool's crowding): each output sent costs the
        server's event loop, which a class's slider moves and page loads wait for."""
        t = session.trainer
        if t is None:
            return self.empty()
        now = time.perf_counter()
        status = status_text(t, rate, state)
        out_status = gr.skip() if live and status == view.get("status") else status
        picture = self.picture(t, view, training=state == "training", live=live, gap=REPORT_EVERY * session.pool.crowding(), session=session)
        if live and (t.step_count == view.get("curve_step") or now < view.get("curve_next", 0.0)):
            curves = (gr.skip(), gr.skip())
        else:
            curves = self.curves(session, t, view if live else None)
            view.update(curve_step=t.step_count, curve_next=now + CURVES_EVERY * session.pool.crowding())
        view["status"] = status
        return (out_status, picture, *curves)

    @staticmethod
    def curves(session: Session, t, view: dict | None = None) -> tuple:
        """The two curves' plots. With a stream's `view`, a plot whose title and colours are
        those it sent last goes as its data alone (rebuilding the component costs the server
        more than the data)."""
        f1, f2 = curve_frames(t, t.model.family)
        (t1, s1), (t2, s2) = t.model.curves
        c1 = plot_series(session.views, "train1").color_map(f1, series_colors(s1, t.model.series, floor=t.data.entropy is not None))
        c2 = plot_series(session.views, "train2").color_map(f2, series_colors(s2, t.model.series))
        props = (t1, c1, t2, c2)
        if view is not None and view.get("plot_props") == props:
            return f1, f2
        if view is not None:
            view["plot_props"] = props
        return gr.LinePlot(value=f1, title=t1, color_map=c1), gr.LinePlot(value=f2, title=t2, color_map=c2)

    def picture(self, t, view: dict, training: bool, live: bool = False, gap: float = 0.0, session: Session | None = None):
        """The samples picture. While training runs, it is redrawn at most once per four times its
        drawing time, so a model whose samples are slow (a diffusion chain) spends at most a
        quarter of the time drawing, and at most every `gap` seconds (a crowded pool's runs are
        drawn less often); a step by hand is always drawn fresh. In a live frame, a picture not
        redrawn is not sent again (gr.skip()), except the first after the run has stepped: the
        student sees their run start in it, not a gap later (4.5 s in a class of 30). The
        `session` learns what its user now sees (the teacher's wall shows it)."""
        now, step = time.perf_counter(), t.step_count  # (the run may step while this draws)
        started = view.get("pic_step") == view.get("start") and step != view.get("start")  # first picture since it stepped
        kept = view.get("pic") is not None and not started and (now < view.get("next", 0.0) if training else step == view.get("pic_step"))
        if kept and (training or live):
            return gr.skip() if live else view["pic"]
        samples = t.progress_samples()
        pic = view["canvas"].draw(samples) if view["canvas"] is not None else samples_picture(samples)
        if session is not None:
            session.show(step, pic)
        if live:
            pic = png_file(pic, self.samples)  # encoded here, not on the server's event loop
        took = time.perf_counter() - now
        view.update(pic=pic, next=now + max(4 * took, gap if step else 0.0), pic_step=step)
        return pic

    def empty(self):
        f1, f2 = curve_frames(None, DEFAULT_FAMILY)
        return status_text(None), None, f1, f2

    def on_pause(self, session: Session):
        if session.trainer is None or not session.trainer.running:
            return gr.update()
        session.trainer.pause()
        return status_text(session.trainer, state="paused")

    def on_resume(self, session: Session):
        if session.trainer is None or not session.trainer.running:
            gr.Info("Nothing to resume: press Train.")
            return gr.update()
        session.trainer.resume()
        return status_text(session.trainer, state="training")

    def on_stop(self, session: Session):
        session.stop()

    def on_reset(self, session: Session):
        session.reset()
        return self.empty()

    def stepper(self, phase: str):
        phases = {"step": [None], "d": ["d"], "g": ["g"], "dg": ["d", "g"]}[phase]

        def on_step(session: Session, *values):
            try:
                session.prepare(self.settings(session, values))
                session.step_by_hand(tuple(phases))
            except (*USER_ERRORS, TrainingDiverged) as e:
                raise user_error(str(e)) from None
            label = {"step": "stepped", "d": "D step done", "g": "G step done", "dg": "D+G step done"}[phase]
            return self.frame(session, self.view(session), label, 0.0)

        return on_step

    def on_live(self, session: Session, *live):
        t = session.trainer
        if t is None:
            return
        values = dict(zip(self.live_fields, live))
        try:
            values = {k: settings_for(t.model.family)[k].check(x) for k, x in values.items() if x is not None and k in settings_for(t.model.family)}
            t.set(**{k: x for k, x in values.items() if k in t.model.live_params})
            if session.settings is not None:
                session.settings.model.update({k: x for k, x in values.items() if k in session.settings.model})
        except ConfigError as e:
            raise user_error(str(e)) from None

    @staticmethod
    def on_name(session: Session, name: str) -> None:
        session.name = clean_name(name)
        session.join_class()

    def on_link_query(self, session: Session, *values) -> str:
        """The query string of a link that opens the tab's settings (playground/links.py)."""
        try:
            return query_from_settings(settings_from(self.values(values)))
        except USER_ERRORS as e:
            raise user_error(str(e)) from None

    def on_link_open(self, request: gr.Request) -> tuple[dict, Link]:
        """{component: update} for the Train tab from the page's query parameters (none: no
        change), and the parsed link (its tab, lesson and what was refused)."""
        params = dict(request.query_params) if request is not None else {}
        link = settings_from_query(params)
        if link.problems:
            gr.Warning("Some of the link was not understood, and is left out: " + "; ".join(link.problems))
        return (self.settings_updates(link.settings) if link.settings is not None else {}), link

    def on_save(self, session: Session, name: str, share: bool, request: gr.Request):
        try:
            folder = common.CHECKPOINT_ROOT / "shared" if share else session_dir(request)
            path = session.save(name, folder)
        except USER_ERRORS as e:
            raise user_error(str(e)) from None
        where = "the shared folder" if share else "your session's folder"
        return str(path), status_text(session.trainer, state=f"saved {path.name} to {where}")

    def on_load(self, session: Session, path: str):
        """Continue from a checkpoint: the model comes back, and so do the settings it was made
        with, so that Train continues it rather than starting afresh."""
        if not path:
            raise user_error("Choose a .safetensors checkpoint file.")
        session.adopt(path)
        try:
            session.load(path)
        except USER_ERRORS as e:
            raise user_error(f"Could not load that checkpoint: {e}") from None
        data = session.settings.data
        updates = self.settings_updates(session.settings)
        if data not in BUILTIN_POINTS + BUILTIN_IMAGES:
            session.settings.data = data  # keep the checkpoint's own file as the data
        frame = self.frame(session, self.view(session), "loaded: press Train to continue", 0.0)
        return {**dict(zip(self.outputs, frame)), **updates}

    # -- showing settings made elsewhere (a checkpoint, a lesson) ------------------------------
    def settings_outputs(self) -> list:
        """The components settings_updates() may change."""
        return [*self.phase_btns, *[self.c[k] for k in self.loaded_controls], *self.knob_rows.values()]

    def settings_updates(self, st: TrainSettings) -> dict:
        """{component: update} that makes the controls show these settings: values, and which
        controls the family has."""
        c = self.c
        builtin = st.data in BUILTIN_POINTS + BUILTIN_IMAGES
        points = st.data in BUILTIN_POINTS or (not builtin and Path(str(st.data)).suffix.lower() == ".csv")
        colour = not points and _is_colour(st.data if builtin else UPLOAD, None if builtin else st.data)
        grey = st.channels == 1 and colour  # "grey" only means something for colour pictures
        own = {
            c["family"]: gr.update(value=st.family), c["data"]: gr.update(value=st.data if builtin else UPLOAD),
            c["image_size"]: gr.update(value=st.image_size, visible=not points), c["batch_size"]: gr.update(value=st.batch_size),
            c["colour"]: gr.update(value="grey" if grey else "auto", visible=not points),
            c["seed"]: gr.update(value=st.seed),
        }  # fmt: skip
        own.update({btn: gr.update(visible=bool(phases(st.family))) for btn in self.phase_btns})
        return {**own, **self.control_updates(st.family, points, {**defaults_for(st.family, points, colour and not grey), **st.model})}
