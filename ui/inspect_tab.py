"""The Inspect tab: what happens inside a model, live while it trains; the Learn panel (the
objective term by term, the procedure step by step) and the teaching presets (lessons).

A GAN gets the discriminator's view, a VAE its latent code; a model with a likelihood (flow,
autoregressive) its NLL and, on 2-D data, its density; a model that samples step by step (flow,
autoregressive, diffusion) the strips of those steps. Which panels show follows what the
Inspector returns for the model, not its family's name.

Handlers are thin: the session's model -> playground.inspection.Inspector -> pictures, frames, text.
A gr.Timer refreshes the views twice a second, only while this tab is open (ui/__init__.py
switches it on and off) and only when the model has taken a step since the last picture.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gradio as gr
import torch

from playground import lessons, quality
from playground.explore import ModelCard, card_from_checkpoint
from playground.inspection import (
    BITS,
    FLOOR,
    NLL_POINTS,
    NOISE_SERIES,
    Inspector,
    describe_collapse,
    describe_modes,
    describe_nll,
    snapshot,
)  # fmt: skip
from playground.inspection import (
    CAPTIONS as STEP_CAPTIONS,
)
from playground.models import a_model
from playground.session import Session
from playground.trainer import TrainingDiverged
from playground.viz import image_grid

from .common import SESSION_MODEL, USER_ERRORS, model_choices, plot_series, user_error
from .streaming import queued, stream

TICK = 0.5  # seconds between two live updates
LESSON_EVERY = 0.5  # seconds between two updates of a running lesson's progress line

CAPTIONS = {
    "plane": "**The discriminator's view.** Colour is D(x): green where D says *real*, purple where it says *fake*. "
    "Grey dots are data, orange dots generated points; the brown mesh is G's image of a grid of latents (its manifold); "
    "arrows show where G's next step pushes each point (uphill in D). Look for clusters with no orange near them: modes G has missed.",
    "hist": "**D's scores** on a real and a generated batch. Early on D separates them (green right, orange left). "
    "At the equilibrium both pile up at ½. Real scores stuck at 1 and generated at 0 mean D wins outright and G learns little.",
    "scores": "**Mean D(x) and D(G(z))** per step. They should meet near the dashed ½; "
    "a D(G(z)) that sinks towards 0 while D(x) rises to 1 is a discriminator that has won.",
    "modes": "**Mode coverage** (ring8 and grid25 only): how many of the true clusters the samples reach.",
    "kl": "**KL per latent dimension**: how many nats each dimension of z carries about the input. "
    "Bars near zero are unused dimensions: their posterior is the prior whatever the input.",
    "curves": "**Reconstruction error and KL** (nats per image), the ELBO's two terms. Raising β trades one for the other: KL falls, reconstruction error rises.",
    "recon": "**Inputs and their reconstructions**: each row of inputs has its reconstructions, decoded from the posterior mean, below it. "
    "Blurry, all-alike reconstructions mean the code carries little about the input.",
    "latent": "**Encoded data**, coloured by label (PCA to 2-D when z has more dimensions); the dotted circle holds 95 % of the prior. "
    "Separate clusters mean the code tells the classes apart; one blob at the centre is posterior collapse.",
    "density": "**The learned density**: exp log p(x) over the plane, exact for a flow, with real points on top. "
    "Dark where the model puts its probability; it should hug the data and leave the gaps empty.",
}
CURVE_COLORS = {
    NLL_POINTS: "#1565c0", BITS: "#1565c0", FLOOR: "#9e9e9e",
    NOISE_SERIES["loss"]: "#212121", NOISE_SERIES["loss_low_noise"]: "#2e7d32",
    NOISE_SERIES["loss_mid_noise"]: "#1565c0", NOISE_SERIES["loss_high_noise"]: "#f57c00",
}  # fmt: skip
EMPTY_LEARN = "### Learn\nTrain a model in the **Train** tab, or start a lesson above: the objective and the training procedure appear here, term by term."
LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]


@dataclass
class InspectState:
    """One session's Inspect tab: which model it shows and the Inspector drawing it."""

    source: str = SESSION_MODEL  # SESSION_MODEL or a checkpoint path
    card: ModelCard | None = None  # the checkpoint's model, when one is chosen
    inspector: Inspector | None = None
    built_for: tuple | None = None  # (model identity, data spec) the inspector was built for
    shown: tuple | None = None  # (model identity, step) of the last pictures sent
    plots: dict = field(default_factory=dict)  # ui.common.plot_series' legends


def state_of(session: Session) -> InspectState:
    return session.views.setdefault("inspect", InspectState())


class InspectTab:
    def __init__(self, session: gr.State, max_trainings: int = 1, show_settings: tuple | None = None):
        self.session = session
        self.max_trainings = max_trainings
        # (components, settings -> their updates): where a lesson's settings are shown (the Train
        # tab's controls; build_demo wires the two tabs together)
        self.show_settings = show_settings
        self.build()
        self.wire()

    # -- layout ----------------------------------------------------------------------------------
    def build(self):
        self.timer = gr.Timer(TICK, active=False)
        with gr.Row(equal_height=True):
            self.lesson_btns = {
                key: gr.Button(lesson.title, size="sm", elem_id=f"lesson-{key}") for key, lesson in lessons.LESSONS.items()
            }  # fmt: skip
            self.stop_btn = gr.Button("Stop", size="sm", variant="stop", elem_id="inspect-stop", min_width=80)
        self.lesson_md = gr.Markdown("**Lessons**: one click sets up a model, trains it and says what to look at. "
                                     "Or train anything in the **Train** tab and watch it here.", elem_id="inspect-lesson")  # fmt: skip
        with gr.Row(equal_height=False):
            self.source = gr.Dropdown(model_choices(None), value=SESSION_MODEL, label="Inspect", elem_id="inspect-source", scale=3, allow_custom_value=True)
            self.status = gr.Markdown("No model to inspect yet: press **Train** in the Train tab, or start a lesson above.", elem_id="inspect-status")
            self.refresh_btn = gr.Button("↻ Refresh", size="sm", scale=0, min_width=100, elem_id="inspect-refresh")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=480):
                with gr.Column(visible=False) as self.gan_box:
                    with gr.Row(equal_height=False):
                        with gr.Column(min_width=300) as self.plane_col:
                            self.plane = gr.Image(label="The discriminator's view", format="jpeg", type="numpy", interactive=False, show_label=False, elem_id="inspect-plane", buttons=[])
                            gr.Markdown(CAPTIONS["plane"], elem_classes=["caption"])
                        with gr.Column(min_width=300):
                            self.hist = gr.Image(label="D scores", format="png", type="numpy", interactive=False, show_label=False, elem_id="inspect-hist", buttons=[])
                            gr.Markdown(CAPTIONS["hist"], elem_classes=["caption"])
                    with gr.Row(equal_height=False):
                        with gr.Column(min_width=300):
                            self.scores = gr.LinePlot(x="step", y="value", color="series", title="D(x) and D(G(z))", height=220, y_lim=[0, 1], elem_id="inspect-scores",
                                                      color_map={"D(x)": "#2e7d32", "D(G(z))": "#f57c00", "equilibrium ½": "#9e9e9e"})  # fmt: skip
                            gr.Markdown(CAPTIONS["scores"], elem_classes=["caption"])
                        with gr.Column(min_width=300):
                            self.modes = gr.Markdown("", elem_id="inspect-modes")
                            gr.Markdown(CAPTIONS["modes"], elem_classes=["caption"])
                with gr.Column(visible=False) as self.vae_box:
                    with gr.Row(equal_height=False):
                        with gr.Column(min_width=300):
                            self.kl = gr.BarPlot(x="dimension", y="KL (nats)", color="state", title="KL per latent dimension", height=240, elem_id="inspect-kl",
                                                 color_map={"used": "#1565c0", "unused": "#bdbdbd"}, sort=None)  # fmt: skip
                            self.vae_note = gr.Markdown("", elem_id="inspect-vae-note")
                            gr.Markdown(CAPTIONS["kl"], elem_classes=["caption"])
                        with gr.Column(min_width=300):
                            self.recon_curve = gr.LinePlot(x="step", y="value", color="series", title="Reconstruction (nats per image)", height=170, elem_id="inspect-recon-curve", color_map={"reconstruction": "#1565c0"})
                            self.kl_curve = gr.LinePlot(x="step", y="value", color="series", title="KL (nats per image)", height=170, elem_id="inspect-kl-curve", color_map={"KL": "#f57c00"})
                            gr.Markdown(CAPTIONS["curves"], elem_classes=["caption"])
                    with gr.Row(equal_height=False):
                        with gr.Column(min_width=300):
                            self.recon = gr.Image(label="Inputs and reconstructions", format="png", type="numpy", interactive=False, show_label=False, height=260, elem_id="inspect-recon", elem_classes=["pixelated"], buttons=[])
                            gr.Markdown(CAPTIONS["recon"], elem_classes=["caption"])
                        with gr.Column(min_width=300):
                            self.latent = gr.Image(label="Encoded data", format="png", type="numpy", interactive=False, show_label=False, elem_id="inspect-latent", buttons=[])
                            gr.Markdown(CAPTIONS["latent"], elem_classes=["caption"])
                with gr.Column(visible=False) as self.steps_box:
                    with gr.Row(equal_height=False):
                        with gr.Column(min_width=300):
                            self.curve = gr.LinePlot(x="step", y="value", color="series", title="Negative log-likelihood", height=240, elem_id="inspect-curve", color_map=CURVE_COLORS)
                            self.readout = gr.Markdown("", elem_id="inspect-readout")
                            self.curve_caption = gr.Markdown(STEP_CAPTIONS["curve"], elem_classes=["caption"])
                        with gr.Column(min_width=300, visible=False) as self.density_col:
                            self.density = gr.Image(label="The learned density", format="jpeg", type="numpy", interactive=False, show_label=False, elem_id="inspect-density", buttons=[])
                            gr.Markdown(CAPTIONS["density"], elem_classes=["caption"])
                    self.reverse = gr.Image(label="From the latent to data", format="png", type="numpy", interactive=False, show_label=False, elem_id="inspect-reverse", buttons=[])
                    self.reverse_caption = gr.Markdown(STEP_CAPTIONS["reverse"], elem_classes=["caption"])
                    with gr.Column(visible=False) as self.forward_col:
                        self.forward = gr.Image(label="From data to the latent", format="png", type="numpy", interactive=False, show_label=False, elem_id="inspect-forward", buttons=[])
                        self.forward_caption = gr.Markdown(STEP_CAPTIONS["forward"], elem_classes=["caption"])
                with gr.Accordion("Sample quality and memorisation (pictures)", open=False, elem_id="inspect-quality-box"):
                    with gr.Row():
                        self.quality_btn = gr.Button("Measure sample quality", size="sm", scale=0, min_width=200, elem_id="inspect-quality")
                        gr.Markdown("KID, precision and recall of 500 samples in the features of a small network trained "
                                    "on this data set (a few seconds, once per data set), and each sample's nearest training picture. "
                                    "A diffusion model draws its 500 samples through its whole chain: a minute or more on a CPU.",
                                    elem_classes=["caption"])  # fmt: skip
                    self.quality_md = gr.Markdown("", elem_id="inspect-quality-text")
                    self.quality_img = gr.Image(label="Samples nearest the training set (top) and those training pictures (bottom)", format="png", type="numpy",
                                                interactive=False, visible=False, elem_id="inspect-quality-pairs", elem_classes=["pixelated"], buttons=["download"])  # fmt: skip
            with gr.Column(scale=2, min_width=320):
                self.learn = gr.Markdown(EMPTY_LEARN, latex_delimiters=LATEX, elem_id="inspect-learn")
                with gr.Row():
                    self.d_btn = gr.Button("D step", size="sm", min_width=60, elem_id="inspect-dstep")
                    self.g_btn = gr.Button("G step", size="sm", min_width=60, elem_id="inspect-gstep")
                    self.step_btn = gr.Button("Whole step", size="sm", min_width=60, elem_id="inspect-step")
                gr.Markdown("Step buttons train the model in the Train tab by hand (a running training pauses): "
                            "the procedure above marks the phase that ran.", elem_classes=["caption"])  # fmt: skip
        self.views = [
            self.status, self.gan_box, self.vae_box, self.plane_col, self.plane, self.hist, self.scores, self.modes,
            self.kl, self.vae_note, self.recon_curve, self.kl_curve, self.recon, self.latent, self.learn, self.d_btn, self.g_btn,
            self.steps_box, self.curve, self.readout, self.curve_caption, self.density_col, self.density,
            self.reverse, self.reverse_caption, self.forward_col, self.forward, self.forward_caption,
        ]  # fmt: skip

    # -- events ----------------------------------------------------------------------------------
    def wire(self):
        S = self.session
        self.timer.tick(
            self.on_tick, [S, self.source], self.views, api_name="inspect_refresh",
            concurrency_limit=None, show_progress="hidden", api_visibility="undocumented",
        )  # fmt: skip
        self.refresh_btn.click(self.on_render, [S, self.source], self.views, api_name="inspect_render", concurrency_limit=None)
        self.source.change(self.on_render, [S, self.source], self.views, api_name=False, concurrency_limit=None)
        for phase, btn in ((None, self.step_btn), ("d", self.d_btn), ("g", self.g_btn)):
            btn.click(self.stepper(phase), [S, self.source], self.views, api_name=f"inspect_{phase or 'whole'}_step", concurrency_id="inspect-step", concurrency_limit=4)
        sync = self.train_sync_outputs()
        self.lesson_outputs = [self.lesson_md, self.source, *sync]
        for key, btn in self.lesson_btns.items():
            event = btn.click(
                self.lesson_runner(key), S, self.lesson_outputs, api_name=f"lesson_{key.replace('-', '_')}",
                concurrency_id="train", concurrency_limit=self.max_trainings, show_progress="minimal", validator=queued,
            )  # fmt: skip
            event.then(self.on_render, [S, self.source], self.views, api_name=False)
        self.stop_btn.click(self.on_stop, S, None, api_name="inspect_stop", concurrency_limit=None)  # the lesson streams "stopped" and ends
        self.quality_btn.click(self.on_quality, [S, self.source], [self.quality_md, self.quality_img], api_name="inspect_quality", concurrency_id="quality", concurrency_limit=1)

    def on_quality(self, session: Session, choice: str | None, request: gr.Request):
        """The sample-quality report of the model inspected, with its likeliest copies."""
        st = state_of(session)
        self.choose(st, choice, request)
        if st.source == SESSION_MODEL:
            if session.trainer is None:
                raise user_error("No model yet: train one in the Train tab, or pick a checkpoint above.")
            model, _, _ = snapshot(session.trainer)
            data = session.trainer.data
        else:
            model, data = st.card.model.eval(), st.card.data
        if data.kind != "images":
            raise user_error(f"Sample quality is measured on pictures; {data.name} is 2-D points (see Mode coverage and the density views instead).")
        try:
            report = quality.quality_report(model, data)
        except ValueError as e:
            raise user_error(str(e)) from None
        samples, nearest, distances = quality.nearest_pairs(report, k=8)
        side = samples.shape[-1]
        picture = image_grid(torch.cat([samples, nearest]), nrow=len(samples), scale=max(1, 96 // side))
        caption = " · ".join(f"{d:.3f}" for d in distances)
        text = quality.describe(report.numbers) + f"\n\nDistances (RMS per pixel), left to right: {caption}."
        return text, gr.Image(value=picture, visible=True)

    # -- which model -----------------------------------------------------------------------------
    def choose(self, st: InspectState, choice: str | None, request: gr.Request | None) -> str:
        """Switch to the chosen model (the Train tab's, or a checkpoint from the list)."""
        choice = choice or SESSION_MODEL
        if choice != st.source:
            st.card = None
            if choice != SESSION_MODEL:
                if choice not in {v for _, v in model_choices(request)}:
                    raise user_error(f"{choice!r} is not one of the models you can inspect: pick one from the list.")
                try:
                    st.card = card_from_checkpoint(choice)
                except USER_ERRORS as e:
                    raise user_error(str(e)) from None
                if st.card.data is None:
                    raise user_error("The data this checkpoint was trained on is not at hand here, and the Inspect views need it. Load it in the Train tab instead.")
            st.source = choice
        return choice

    def render(self, session: Session, choice: str | None, request: gr.Request | None, *, force: bool):
        st = state_of(session)
        if self.choose(st, choice, request) == SESSION_MODEL:
            t = session.trainer
            if t is None:
                if st.shown == "empty" and not force:
                    return self.skip()
                st.shown = "empty"
                return self.empty()
            running = t.running and not t.paused
            shown = (("trainer", id(t), id(t.model)), t.step_count, running)
            if not force and st.shown == shown:
                return self.skip()  # nothing new since the last pictures: no copy, no drawing
            model, last, step = snapshot(t)
            data, rows, name, seed = t.data, list(t.history.rows), "the model in the Train tab", t.config.seed
        else:
            card, running = st.card, False
            step = int(card.meta.get("step", 0))
            shown = (("card", id(card)), step, running)
            if not force and st.shown == shown:
                return self.skip()
            model, data, last, name, seed = card.model.eval(), card.data, {}, card.name, 0
            rows = (card.meta.get("history") or {}).get("rows", [])
        key = (shown[0], data.spec, model.family, model.latent_dim)
        if st.inspector is None or st.built_for != key:
            st.inspector, st.built_for = Inspector(data, seed=seed), key
        insp = st.inspector
        if not insp.lock.acquire(blocking=force):
            return self.skip()  # the previous tick is still drawing
        try:
            v = insp.views(model, step=step, last=last, rows=rows, running=running)
        finally:
            insp.lock.release()
        st.shown = shown
        return self.frame(v, name, data, running, st)

    def frame(self, v: dict, name: str, data, running: bool, st: InspectState | None = None):
        """The outputs for one set of views: the boxes the model has are shown and filled, the
        others hidden and left as they were."""
        family = v["family"]
        state = "training" if running else "idle"
        what = a_model(family)
        status = f"Inspecting **{name}**: {what} on `{data.name}` · step **{v['step']:,}** · {state}"
        partial = bool(v.get("phases"))  # D and G steps: the GAN's
        out = {
            self.status: status, self.learn: v["learn"],
            self.gan_box: gr.Column(visible="hist" in v), self.vae_box: gr.Column(visible="diagnostics" in v),
            self.steps_box: gr.Column(visible="curve" in v),
            self.d_btn: gr.Button(visible=partial), self.g_btn: gr.Button(visible=partial),
        }  # fmt: skip
        if "hist" in v:
            points = v["plane"] is not None
            modes = describe_modes(v["modes"]) or "No known modes for this data: mode coverage is counted on ring8 and grid25."
            out.update({self.plane_col: gr.Column(visible=points), self.hist: v["hist"], self.scores: v["scores"], self.modes: modes})
            if points:
                out[self.plane] = v["plane"]
        if "diagnostics" in v:
            out.update({
                self.kl: gr.BarPlot(value=v["kl"], sort=v["kl"]["dimension"].tolist()),
                self.vae_note: describe_collapse(v["diagnostics"], v["step"]),
                self.recon_curve: v["recon_curve"], self.kl_curve: v["kl_curve"], self.recon: v["recon"], self.latent: v["latent"],
            })  # fmt: skip
        if "curve" in v:
            out.update({
                self.curve: gr.LinePlot(value=v["curve"], title=v["curve_title"], color_map=plot_series(st.plots if st else {}, "curve").color_map(v["curve"], CURVE_COLORS)),
                self.readout: describe_nll(v["nll"]),
                self.curve_caption: v["captions"]["curve"],
                self.density_col: gr.Column(visible=v["density"] is not None),
                self.reverse: v["reverse"] if v["reverse"] is not None else gr.skip(),
                self.reverse_caption: v["captions"]["reverse"],
                self.forward_col: gr.Column(visible=v["forward"] is not None),
                self.forward_caption: v["captions"]["forward"],
            })  # fmt: skip
            if v["density"] is not None:
                out[self.density] = v["density"]
            if v["forward"] is not None:
                out[self.forward] = v["forward"]
        return self.outputs(out)

    def outputs(self, values: dict) -> tuple:
        """`values` in the order of self.views; a component not in it is left as it is."""
        return tuple(values.get(c, gr.skip()) for c in self.views)

    def skip(self):
        return self.outputs({})

    def empty(self):
        status = "No model to inspect yet: press **Train** in the Train tab, or start a lesson above."
        hidden = {box: gr.Column(visible=False) for box in (self.gan_box, self.vae_box, self.steps_box)}
        return self.outputs({self.status: status, self.learn: EMPTY_LEARN, **hidden})

    # -- handlers --------------------------------------------------------------------------------
    def on_tick(self, session: Session, choice: str | None, request: gr.Request):
        return self.render(session, choice, request, force=False)

    def on_render(self, session: Session, choice: str | None, request: gr.Request):
        return self.render(session, choice, request, force=True)

    def on_open(self, session: Session, choice: str | None, request: gr.Request):
        """The tab was opened: draw now and start the live refresh."""
        return (*self.render(session, choice, request, force=True), gr.Timer(active=True))

    @staticmethod
    def on_close():
        return gr.Timer(active=False)

    @staticmethod
    def on_stop(session: Session):
        session.stop()

    def stepper(self, phase: str | None):
        def on_step(session: Session, choice: str | None, request: gr.Request):
            if (choice or SESSION_MODEL) != SESSION_MODEL:
                raise user_error("Stepping trains the model in the Train tab: choose it in the Inspect list first.")
            try:
                session.step_by_hand((phase,), whole="Whole step")
            except (*USER_ERRORS, TrainingDiverged) as e:
                raise user_error(str(e)) from None
            return self.render(session, choice, request, force=True)

        return on_step

    # -- lessons ---------------------------------------------------------------------------------
    def lesson_runner(self, key: str):
        lesson = lessons.get(key)

        def run_lesson(session: Session):
            """Set up the lesson's model, train it for its budget (Stop ends it), stream progress."""
            if not session.may_train():  # Stop or Reset was pressed while this waited in the queue
                yield {self.lesson_md: f"{lesson.text}\n\n**Stopped** before it began."}
                return
            settings = lesson.settings()
            try:
                trainer, _ = session.prepare(settings, fresh=True)
                runner = session.start(trainer, seconds=lesson.seconds)
            except USER_ERRORS as e:
                raise user_error(str(e)) from None
            state_of(session).source = SESSION_MODEL
            first = {self.source: SESSION_MODEL, **self.train_sync_values(settings)}  # once, then the text alone

            def frame(state, _rate):
                nonlocal first
                out, first = {self.lesson_md: self.lesson_text(lesson, trainer, "done" if state == "stopped" else state), **first}, {}
                return out

            yield from stream(session, runner, LESSON_EVERY, frame)

        return run_lesson

    @staticmethod
    def lesson_text(lesson: lessons.Lesson, trainer, state: str) -> str:
        done = min(trainer.elapsed, lesson.seconds)
        if state == "done":
            over = "Lesson over" if trainer.elapsed >= lesson.seconds else "Stopped"
            progress = f"**{over}**: {trainer.step_count:,} steps in {trainer.elapsed:.0f} s of training. Press **Train** in the Train tab to go on."
        else:
            progress = f"**{state.capitalize()}**: step {trainer.step_count:,} · {done:.0f} of {lesson.seconds:.0f} s · **Stop** ends it early."
        return f"{lesson.text}\n\n{progress}"

    # -- the Train tab shows the lesson's settings ----------------------------------------------
    def train_sync_outputs(self) -> list:
        return list(self.show_settings[0]) if self.show_settings else []

    def train_sync_values(self, settings) -> dict:
        return self.show_settings[1](settings) if self.show_settings else {}
