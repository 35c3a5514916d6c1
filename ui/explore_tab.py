"""The Explore tab: latent sliders, a latent map, interpolations, traversals, encode and export.

Handlers are thin: widget values -> playground.explore.Explorer -> pictures.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import tempfile
import urllib.parse
import uuid
from pathlib import Path

import gradio as gr
import torch

from playground import provenance, sampling
from playground.explore import (
    EXPORT_SCALES,
    GRID_WIDTH,
    INVERT_STEPS,
    N_DIRECTIONS,
    N_SLIDERS,
    Explorer,
    Lineage,
    card_from_checkpoint,
    card_from_trainer,
    find_model,
    gif_bytes,
    image_to_tensor,
    invert,
    latent_map,
    latent_map_latents,
    list_checkpoints,
    loop_latents,
    map_click_to_latent,
    mp4_bytes,
    sketch_to_tensor,
    sprite_sheet,
    to_uint8,
    traversal_latents,
)
from playground.files import prune
from playground.models import ConfigError, a_model
from playground.onnx_export import decoder_file, onnx_bytes
from playground.session import Session
from playground.viz import figure_array, latent_scatter

from . import common
from .common import SESSION_MODEL, USER_ERRORS, model_choices, user_error

MAP_STEPS = 15
Z_RANGE = 3.0  # a latent slider's range, ±; wider when the point's coordinate is further out
N_CLASS_SLIDERS = 10  # "more like" sliders of a conditional model (its first ten classes)
DIRECTION_TITLES = {"principal": "Principal directions (GANSpace)", "attributes": "Attributes (from the data's labels and factors)"}
EXPORT_TTL = 3600  # seconds an exported PNG/GIF stays in our folder
# The page draws a slider's picture itself when it can (ui/static/explore_decode.js); otherwise
# it presses the hidden server-decode button, whose listener is the /decode endpoint
SERVER_DECODE = "document.querySelector('#explore-server-decode').click()"
SLIDE_JS = f"(...a) => window.pgExplore ? window.pgExplore.slide(...a) : {SERVER_DECODE}"
SLIDE_CLASS_JS = "(...a) => window.pgExplore && window.pgExplore.slideClass(...a)"
PLAN_JS = "(plan, inBrowser) => window.pgExplore && window.pgExplore.planChanged(plan, inBrowser)"
# Before a listener that makes a picture: its last input (the hidden page_draws box) says whether
# this page draws pictures itself now, so the server sends the numbers rather than the picture
PAGE_JS = "(...a) => { a[a.length - 1] = !!(window.pgExplore && window.pgExplore.canDraw()); return a; }"
# Before a new model is shown: whether this page will draw its pictures once its decoder is ready
# (then the server leaves the latent map to it)
PICK_JS = "(...a) => { a[a.length - 1] = !!(window.pgExplore && window.pgExplore.willDraw()); return a; }"
# A grid's numbers from the server (Explorer.grid_plan): the page draws the grid and shows it
GRID_JS = "async (grid, current) => window.pgExplore ? await window.pgExplore.drawGrid(grid, current) : current"


FIRST_MODEL = "vae-digits-2d"  # opens Explore: a latent map to click, and every slider matters


def first_shipped() -> str | None:
    paths = [path for _, path in list_checkpoints(common.CHECKPOINT_ROOT)]
    preferred = [p for p in paths if p.stem == FIRST_MODEL]
    return str((preferred + paths)[0]) if paths else None


class ExploreTab:
    def __init__(self, session: gr.State, decoders: Path | None = None):
        """`decoders`: the folder the app serves the decoders exported for the page from
        (playground.onnx_export.decoder_dir()); None: the server draws every picture."""
        self.session = session
        self.decoders = decoders
        self.build()
        self.wire()

    def build(self):
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=300):
                with gr.Row():
                    # allow_custom_value: the list is per session (your own checkpoints), so the server checks
                    # each choice against model_choices(request) itself
                    self.pick = gr.Dropdown(model_choices(None), value=first_shipped(), label="Model", elem_id="explore-model", scale=4, allow_custom_value=True)
                    self.refresh = gr.Button("↻", size="sm", min_width=40, scale=0, elem_id="explore-refresh")
                self.upload = gr.File(label="…or upload a .safetensors checkpoint", file_types=[".safetensors"], type="filepath", height=150, elem_id="explore-upload")
                self.info = gr.Markdown("Pick a model.", elem_id="explore-info")
                with gr.Row():
                    self.seed = gr.Number(value=0, precision=0, minimum=0, label="Seed", min_width=80, elem_id="explore-seed")
                    self.random_btn = gr.Button("Random", size="sm", min_width=60, elem_id="explore-random")
                    self.reset_btn = gr.Button("Reset", size="sm", min_width=60, elem_id="explore-reset")
                with gr.Accordion("Class (conditional model)", open=True, visible=False) as self.class_box:
                    with gr.Row():
                        self.cls = gr.Dropdown([], label="Draw as class", min_width=120, elem_id="explore-class")
                        self.cls_other = gr.Dropdown([("none", -1)], value=-1, label="Blend with", min_width=120, elem_id="explore-class-other")
                    self.cls_mix = gr.Slider(0, 1, value=0.5, step=0.05, label="Blend: 0 = the class, 1 = the other", elem_id="explore-class-mix")
                    self.guidance = gr.Slider(0, 10, value=2, step=0.5, label="Guidance scale s: 0 unconditional, 1 conditional, more: more like the class",
                                              visible=False, elem_id="explore-guidance")  # fmt: skip
                    # attribute sliders through the class input: add some of a class's embedding
                    self.cls_more = [gr.Slider(-1, 2, value=0, step=0.05, label=f"more like class {k}", visible=False, elem_id=f"class-more{k}")
                                     for k in range(N_CLASS_SLIDERS)]  # fmt: skip
                with gr.Accordion("Latent coordinates", open=True):
                    self.z = [gr.Slider(-Z_RANGE, Z_RANGE, value=0, step=0.01, label=f"z{i}", visible=i < 2, elem_id=f"z{i}") for i in range(N_SLIDERS)]
                with gr.Accordion("Principal directions (GANSpace)", open=True, visible=False) as self.dir_box:
                    self.d = [gr.Slider(-6, 6, value=0, step=0.05, label=f"PC{i + 1}", elem_id=f"pc{i}") for i in range(N_DIRECTIONS)]
            with gr.Column(scale=2, min_width=400):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3, min_width=200):
                        # no download button: it would give the server's last picture, not one the page drew (Export PNG does)
                        self.view = gr.Image(label="Decoded", format="png", type="numpy", interactive=False, height=300, elem_id="explore-image", elem_classes=["pixelated"],
                                             buttons=[])  # fmt: skip
                        self.in_browser = gr.Checkbox(value=True, label="Draw the pictures in this browser (no wait for the server)", elem_id="explore-in-browser")
                        self.path_note = gr.HTML("", elem_id="explore-path")  # which path draws: explore_decode.js writes it
                        # what the page needs to draw (Explorer.browser_plan), and the server's path
                        self.plan = gr.JSON(None, visible=False)
                        self.server_decode = gr.Button("Draw on the server", elem_id="explore-server-decode", elem_classes=["pg-hidden"])
                        self.server_map = gr.Button("Draw the map on the server", elem_id="explore-server-map", elem_classes=["pg-hidden"])
                        self.page_draws = gr.Checkbox(False, visible=False)  # set by PAGE_JS before a listener runs
                    with gr.Column(scale=2, min_width=200):
                        self.encode_in = gr.Image(label="Put an image in the latent space (VAE: encode; GAN: search), then edit it with the sliders",
                                                  type="filepath", sources=["upload"], height=160, elem_id="explore-encode")  # fmt: skip
                        with gr.Accordion("…or draw one", open=False, visible=False) as self.sketch_box:
                            self.sketch = gr.Sketchpad(type="numpy", image_mode="RGBA", canvas_size=(280, 280), layers=False, height=300,
                                                       brush=gr.Brush(default_size=18, colors=["#000000", "#d32f2f", "#1976d2", "#388e3c", "#fbc02d"]),
                                                       label="Draw (black ink for grey models)", elem_id="explore-sketch")  # fmt: skip
                            self.sketch_btn = gr.Button("Put the drawing in the latent space", size="sm", elem_id="explore-sketch-run")
                        self.encode_info = gr.Markdown("", elem_id="explore-encode-info")
                        with gr.Row():
                            self.export_scale = gr.Dropdown([(f"×{k}", k) for k in EXPORT_SCALES], value=8, label="Export size", min_width=90, elem_id="explore-export-scale")
                            self.export_smooth = gr.Radio([("crisp pixels", False), ("smooth", True)], value=False, label="Upscaling", min_width=120, elem_id="explore-export-smooth")
                        with gr.Row():
                            self.export_btn = gr.Button("Export PNG", size="sm", elem_id="explore-export")
                            self.onnx_btn = gr.Button("Export the decoder (ONNX)", size="sm", elem_id="explore-onnx")
                        self.export_file = gr.File(label="Export: the PNG (it carries what made it) and the same as JSON", file_count="multiple",
                                                   interactive=False, height=90, elem_id="explore-file")  # fmt: skip
                        self.reopen = gr.File(label="Drop an exported PNG to reopen it on its model", file_types=[".png"], type="filepath",
                                              height=150, elem_id="explore-reopen")  # fmt: skip
                with gr.Tabs() as self.tabs:
                    with gr.Tab("Latent map", id="map") as self.map_tab:
                        gr.Markdown("For models with a 2-D latent: decoded images over the plane (click to jump there) and the data encoded onto it, coloured by label.")
                        with gr.Row():
                            self.map = gr.Image(label="Decoded latent plane", format="png", type="numpy", interactive=False, height=360, elem_id="explore-map", elem_classes=["pixelated"])
                            self.scatter = gr.Image(label="Encoded data", format="png", type="numpy", interactive=False, height=360, elem_id="explore-scatter")
                    with gr.Tab("Interpolate", id="interp"):
                        with gr.Row():
                            self.seed_a = gr.Number(value=1, precision=0, minimum=0, label="From seed", min_width=80)
                            self.seed_b = gr.Number(value=2, precision=0, minimum=0, label="To seed", min_width=80)
                            self.mode = gr.Radio(["spherical", "linear"], value="spherical", label="Path")
                            self.steps = gr.Slider(3, 24, value=10, step=1, label="Steps")
                        with gr.Row():
                            self.img_a = gr.Image(label="…or from this image (VAE)", type="filepath", sources=["upload"], height=120)
                            self.img_b = gr.Image(label="…to this image (VAE)", type="filepath", sources=["upload"], height=120)
                        with gr.Row():
                            self.interp_btn = gr.Button("Interpolate", variant="primary", elem_id="interp-run")
                            self.interp_gif_btn = gr.Button("Save as an animated GIF", elem_id="interp-gif-run")
                        self.interp_view = gr.Image(label="Interpolation", format="png", type="numpy", interactive=False, elem_id="interp-image", elem_classes=["pixelated"])
                        self.interp_gif = gr.File(label="Animated GIF", interactive=False, height=80, elem_id="interp-gif")
                    with gr.Tab("How a sample is made", id="process", visible=False) as self.process_tab:
                        self.process_md = gr.Markdown("", elem_id="process-info")
                        with gr.Row():
                            self.process_dir = gr.Radio([("latent → samples", "generate"), ("data → latent", "encode")], value="generate", label="Direction", elem_id="process-dir")
                            self.process_steps = gr.Slider(0, 1000, value=0, step=10, label="Sampling steps (0 = all T; at most T)", visible=False, elem_id="process-steps")
                            self.process_btn = gr.Button("Show the steps", elem_id="process-run")
                        self.process_frame = gr.Slider(0, 1, value=0, step=1, label="Step", elem_id="process-frame")
                        self.process_view = gr.Image(label="Step", format="png", type="numpy", interactive=False, elem_id="process-image", elem_classes=["pixelated"], height=380)
                        self.process_gif = gr.File(label="Animated GIF of every step", interactive=False, height=80, elem_id="process-gif")
                    with gr.Tab("Breed", id="breed"):
                        gr.Markdown("Children of 2 to 4 parents: each latent coordinate from one parent picked at random "
                                    "(crossover), then nudged by noise (mutation). Click children to pick them as parents, "
                                    "breed, and repeat.")  # fmt: skip
                        with gr.Row():
                            self.breed_seed = gr.Number(value=0, precision=0, minimum=0, label="Seed", min_width=80, elem_id="breed-seed")
                            self.breed_start = gr.Button("New first generation", elem_id="breed-start")
                            self.breed_parents = gr.Textbox(label="Parents (click children, or type their numbers)", placeholder="e.g. 1, 4", elem_id="breed-parents")
                            self.breed_mutation = gr.Slider(0, 2, value=0.3, step=0.05, label="Mutation strength", elem_id="breed-mutation")
                            self.breed_btn = gr.Button("Breed", variant="primary", elem_id="breed-run")
                        self.breed_info = gr.Markdown("", elem_id="breed-info")
                        self.breed_view = gr.Gallery(label="Children", columns=4, allow_preview=False, height="auto", format="png", elem_id="breed-gallery", elem_classes=["pixelated"])
                    with gr.Tab("Loop", id="loop"):
                        gr.Markdown("A seamless loop through keyframes (the last leads back to the first), as an animated "
                                    "GIF, an MP4 video and a sprite sheet PNG (every frame in order, a row per keyframe).")  # fmt: skip
                        with gr.Row():
                            self.loop_keys = gr.Textbox(value="1, 2, 3, 4", label="Keyframes: seeds", elem_id="loop-keys")
                            self.loop_bred = gr.Checkbox(value=False, label="…or the children picked in Breed", elem_id="loop-bred")
                            self.loop_steps = gr.Slider(2, 60, value=12, step=1, label="Frames per keyframe", elem_id="loop-steps")
                            self.loop_mode = gr.Radio(["spherical", "linear"], value="spherical", label="Path")
                        self.loop_btn = gr.Button("Make the loop", elem_id="loop-run")
                        self.loop_view = gr.Image(label="Sprite sheet", format="png", type="numpy", interactive=False, elem_id="loop-image", elem_classes=["pixelated"])
                        self.loop_files = gr.File(label="Animated GIF, MP4 and sprite sheet", file_count="multiple", interactive=False, height=100, elem_id="loop-files")
                    with gr.Tab("Every class", id="classes", visible=False) as self.classes_tab:
                        gr.Markdown("The current latent drawn as each class in turn, in the order of the class list: what the class adds, and what the latent keeps.")
                        self.classes_btn = gr.Button("Draw every class", elem_id="classes-run")
                        self.classes_view = gr.Image(label="Every class", format="png", type="numpy", interactive=False, elem_id="classes-image", elem_classes=["pixelated"])
                    with gr.Tab("Traversal", id="trav"):
                        gr.Markdown("One latent direction per row, from −span to +span around the current point (VAE: the most used dimensions; GAN: the principal directions).")
                        with gr.Row():
                            self.trav_steps = gr.Slider(3, 15, value=9, step=1, label="Steps per row")
                            self.trav_span = gr.Slider(0.5, 6, value=3, step=0.5, label="Span")
                            self.trav_rows = gr.Slider(1, 8, value=6, step=1, label="Rows")
                        with gr.Row():
                            self.trav_btn = gr.Button("Traverse", variant="primary", elem_id="trav-run")
                            self.trav_gif_btn = gr.Button("Save as an animated GIF", elem_id="trav-gif-run")
                        self.trav_view = gr.Image(label="Traversal", format="png", type="numpy", interactive=False, elem_id="trav-image", elem_classes=["pixelated"])
                        self.trav_gif = gr.File(label="Animated GIF (one frame per column)", interactive=False, height=80, elem_id="trav-gif")
        # each grid's numbers, when the page draws it (Explorer.grid_plan)
        self.grids = {image: gr.JSON(None, visible=False) for image in (self.map, self.interp_view, self.trav_view, self.classes_view)}

    def wire(self):
        S = self.session
        sliders = [*self.z, *self.d]
        pick_outputs = [
            self.info, self.view, self.dir_box, *sliders, self.map_tab, self.map, self.scatter,
            self.process_tab, self.process_md, self.process_dir, self.process_steps,
            self.tabs, self.encode_in, self.sketch_box, self.img_a, self.img_b,
            self.class_box, self.cls, self.cls_other, self.cls_mix, self.guidance, *self.cls_more, self.classes_tab, self.plan,
        ]  # fmt: skip
        self.pick_outputs = pick_outputs
        P = self.page_draws
        self.pick_js = dict(js=PICK_JS)  # for listeners that show a new model: their last input is P
        self.pick.change(self.on_pick, [S, self.pick, P], pick_outputs, api_name="explore_pick", **self.pick_js).then(**self.decoder_step("explore_decoder"))
        self.upload.upload(self.on_upload, [S, self.upload, P], pick_outputs, api_name="explore_upload", **self.pick_js).then(**self.decoder_step())
        reopened = self.reopen.upload(self.on_reopen, [S, self.reopen, P], [*pick_outputs, self.export_scale, self.export_smooth], api_name="explore_reopen", **self.pick_js)
        reopened.then(**self.decoder_step())
        self.refresh.click(self.on_refresh, None, self.pick, api_name=False)
        # a slider's picture: drawn in the page (explore_decode.js), or by the server's /decode
        browser_in = [self.plan, self.in_browser, self.cls, self.cls_other, self.cls_mix, *self.cls_more, *sliders]
        quick = dict(trigger_mode="always_last", show_progress="hidden", queue=False)
        for s in sliders:
            s.input(None, browser_in, None, js=SLIDE_JS, **quick)
        self.in_browser.change(None, browser_in, None, js=SLIDE_JS, **quick)
        self.plan.change(None, [self.plan, self.in_browser], None, js=PLAN_JS, **quick)
        decode = self.server_decode.click(self.on_slide, [S, *sliders], self.view, api_name="decode", concurrency_limit=None, api_visibility="undocumented", **quick)
        self.decode_fn = decode["id"]  # the page asks /decode by this number when the server draws
        # a listener that makes a picture asks the page first (PAGE_JS) whether it draws pictures
        # itself now: then the server sends the numbers (the plan, a grid's plan), not the picture
        page = dict(js=PAGE_JS)
        for image, grid in self.grids.items():
            grid.change(None, [grid, image], image, js=GRID_JS, **quick)
        class_in = [S, self.cls, self.cls_other, self.cls_mix, self.guidance, *self.cls_more, *sliders, P]
        class_out = [self.view, self.map, self.plan, self.grids[self.map]]
        for control in (self.cls, self.cls_other):
            control.input(self.on_class, class_in, class_out, api_name="explore_class" if control is self.cls else False, **page)
        for control in (self.cls_mix, *self.cls_more):  # drawn in the page as it moves, where the page can
            control.input(None, browser_in, None, js=SLIDE_CLASS_JS, **quick)
        for control in (self.cls_mix, self.guidance, *self.cls_more):
            control.release(self.on_class, class_in, class_out, api_name=False, trigger_mode="always_last", **page)
        self.server_map.click(self.on_map_server, S, self.map, api_name=False)  # the page could not draw the map
        self.classes_btn.click(self.on_every_class, [S, *sliders, P], [self.classes_view, self.grids[self.classes_view]], api_name="explore_every_class", **page)
        self.seed.submit(self.on_seed, [S, self.seed, P], [*self.z, *self.d, self.plan, self.view], api_name="explore_seed", **page)
        self.random_btn.click(self.on_random, [S, P], [self.seed, *self.z, *self.d, self.plan, self.view], api_name="explore_random", **page)
        self.reset_btn.click(self.on_reset, [S, P], [*self.z, *self.d, self.plan, self.view], api_name="explore_reset", **page)
        self.map.select(self.on_map_click, [S, P], [*self.z, self.plan, self.view], api_name=False, **page)
        self.encode_in.upload(self.on_encode, [S, self.encode_in, P], [*self.z, *self.d, self.plan, self.view, self.encode_info], api_name="explore_encode", **page)
        self.sketch_btn.click(self.on_sketch, [S, self.sketch, P], [*self.z, *self.d, self.plan, self.view, self.encode_info], api_name="explore_sketch", **page)
        self.onnx_btn.click(self.on_onnx, S, self.export_file, api_name="explore_onnx")
        self.export_btn.click(self.on_export, [S, self.export_scale, self.export_smooth, *sliders], self.export_file, api_name="explore_export")
        # an interpolation and a traversal redraw as their settings change (in the page: at once)
        interp_in = [S, self.seed_a, self.seed_b, self.img_a, self.img_b, self.mode, self.steps]
        interp_out = [self.interp_view, self.grids[self.interp_view]]
        self.interp_btn.click(self.on_interpolate, [*interp_in, P], interp_out, api_name="interpolate", **page)
        for control in (self.steps.release, self.mode.input, self.seed_a.submit, self.seed_b.submit):
            control(self.on_interpolate, [*interp_in, P], interp_out, api_name=False, trigger_mode="always_last", **page)
        self.interp_gif_btn.click(self.on_interpolate_gif, interp_in, self.interp_gif, api_name="interpolate_gif")
        self.process_btn.click(self.on_process, [S, self.seed, self.process_dir, self.process_steps], [self.process_frame, self.process_view, self.process_gif], api_name="process")
        self.process_frame.input(self.on_process_frame, [S, self.process_frame], self.process_view, api_name="process_frame", trigger_mode="always_last", show_progress="hidden", concurrency_limit=None)
        breed_out = [self.breed_view, self.breed_parents, self.breed_info]
        self.breed_start.click(self.on_breed_start, [S, self.breed_seed], breed_out, api_name="explore_breed_start")
        self.breed_btn.click(self.on_breed, [S, self.breed_parents, self.breed_mutation, self.breed_seed], breed_out, api_name="explore_breed")
        self.breed_view.select(self.on_breed_pick, [S, self.breed_parents], [self.breed_parents, self.breed_info], api_name=False)
        self.loop_btn.click(self.on_loop, [S, self.loop_keys, self.loop_bred, self.loop_steps, self.loop_mode], [self.loop_view, self.loop_files], api_name="explore_loop")
        trav_in = [S, self.trav_steps, self.trav_span, self.trav_rows, *sliders]
        trav_out = [self.trav_view, self.grids[self.trav_view]]
        self.trav_btn.click(self.on_traverse, [*trav_in, P], trav_out, api_name="traverse", **page)
        for control in (self.trav_steps, self.trav_span, self.trav_rows):
            control.release(self.on_traverse, [*trav_in, P], trav_out, api_name=False, trigger_mode="always_last", **page)
        self.trav_gif_btn.click(self.on_traverse_gif, trav_in, self.trav_gif, api_name="traverse_gif")

    # -- choosing a model --------------------------------------------------------------------
    @staticmethod
    def on_refresh(request: gr.Request):
        return gr.Dropdown(choices=model_choices(request))

    def on_pick(self, session: Session, choice: str | None, page_draws=False, request: gr.Request = None):
        if not choice:
            raise user_error("Pick a model to explore.")
        if choice not in {value for _, value in model_choices(request)}:
            raise user_error(f"{choice!r} is not one of the models you can explore: pick one from the list, or upload a checkpoint.")
        try:
            if choice == SESSION_MODEL:
                if session.trainer is None:
                    raise ConfigError("there is no model in the Train tab yet: train one, or pick a shipped model")
                card = card_from_trainer(session.trainer)
            else:
                card = card_from_checkpoint(choice)
        except USER_ERRORS as e:
            raise user_error(str(e)) from None
        return self.show(session, card, page_draws=page_draws)

    def on_open(self, session: Session, choice: str | None, page_draws=False, request: gr.Request = None):
        """The tab was opened: show the chosen model right away, once per session, and again
        when it is the Train tab's model and that has trained (or been replaced) since."""
        ex = session.views.get("explorer")
        t = session.trainer
        stale = choice == SESSION_MODEL and t is not None and ex is not None and ex.trainer_step != (id(t), t.step_count)
        if not choice or (ex is not None and not stale):
            return tuple(gr.skip() for _ in self.pick_outputs)  # nothing to change (an empty dict reads as one value)
        return self.on_pick(session, choice, page_draws, request)

    def on_upload(self, session: Session, path: str | None, page_draws=False):
        session.adopt(path)
        if not path:
            raise user_error("Choose a .safetensors checkpoint.")
        try:
            card = card_from_checkpoint(path, name=Path(path).stem)
        except USER_ERRORS as e:
            raise user_error(f"Could not load that checkpoint: {e}") from None
        return self.show(session, card, page_draws=page_draws)

    def on_reopen(self, session: Session, path: str | None, page_draws=False, request: gr.Request = None):
        """A PNG exported by Explore, dropped back: the model that made it, in the state it was
        in (latent, class, sampling settings), or a message naming the checkpoint it needs."""
        session.adopt(path)
        if not path:
            return tuple(gr.skip() for _ in range(len(self.pick_outputs) + 2))
        ex = session.views.get("explorer")
        try:
            rec = provenance.read_record(path)
            paths = [Path(value) for _, value in model_choices(request) if value != SESSION_MODEL]
            card = find_model(rec, paths, ex.card if ex is not None else None, session.trainer)
            out = self.show(session, card, rec, page_draws)
        except (*USER_ERRORS, provenance.ProvenanceError) as e:
            raise user_error(f"Could not reopen that picture: {e}") from None
        export = rec.get("export") or {}
        out[self.export_scale] = export.get("scale") if export.get("scale") in EXPORT_SCALES else gr.skip()
        out[self.export_smooth] = bool(export.get("smooth", False))
        return out

    def show(self, session: Session, card, rec: dict | None = None, page_draws=False):
        """Explore `card`: at the origin (VAEs), at seed 0's latent, or (a reopened picture) where
        its record says. A 2-D model's latent map is left to the page when it will draw
        (`page_draws`): it is drawn there once the decoder is ready (on_decoder)."""
        ex = Explorer(card)
        if rec is not None:
            ex.reopen(rec)  # before it is the session's: a picture it refuses changes nothing
            values = ex.values_from(ex.base)
        elif card.encodes:
            values = ex.jump(torch.zeros(card.latent_dim))
        else:
            values = ex.jump(self.seed_base(ex, 0), 0)
        session.views["explorer"] = ex
        z_updates = []
        for i in range(N_SLIDERS):
            if i < len(ex.sliders):
                label = ex.slider_label(i) + (f" · KL {ex.kls[i]:.2f}" if card.encodes and card.data is not None else "")
                z_updates.append(self.z_slider(values[i], label=label, visible=True))
            else:
                z_updates.append(gr.Slider(value=0, visible=False))
        d_updates = [
            gr.Slider(value=0, label=ex.direction_names[i], visible=True)
            if i < len(ex.directions) else gr.Slider(value=0, visible=False)
            for i in range(N_DIRECTIONS)
        ]  # fmt: skip
        view = ex.draw(ex.z_from(values))
        two_d = self.has_map(ex)
        map_pic = scatter = None
        if two_d:
            ex.map_in_page = bool(page_draws) and ex.browser_reason is None and self.decoders is not None
            map_pic = None if ex.map_in_page else self.map_picture(ex)
            scatter = self.scatter_picture(ex)
        return {
            self.info: self.describe(ex), self.view: view, self.dir_box: gr.Accordion(label=DIRECTION_TITLES.get(ex.directions_kind, ""), visible=len(ex.directions) > 0),
            **dict(zip(self.z, z_updates)), **dict(zip(self.d, d_updates)),
            self.map_tab: gr.Tab(visible=two_d), self.map: map_pic, self.scatter: scatter, **self.process_updates(ex),
            # open on a tab this model has; the image inputs are for models with an encoder
            self.tabs: gr.Tabs(selected="map" if two_d else "process" if ex.has_process else "interp"),
            **{image: gr.Image(visible=card.encodes) for image in (self.img_a, self.img_b)},
            **{box: gr.update(visible=not card.is_points and (card.encodes or hasattr(card.model, "decode_with_grad"))) for box in (self.encode_in, self.sketch_box)},
            **self.class_updates(ex), self.plan: self.plan_of(ex),
        }  # fmt: skip

    # -- pictures drawn in the page ------------------------------------------------------------
    _plans = itertools.count()

    def plan_of(self, ex: Explorer, values: list | None = None, alphas: list | None = None, point: str | None = "new", server_drew: bool = True) -> dict:
        """Explorer.browser_plan, as the page's script (ui/static/explore_decode.js) takes it: what
        the page draws on it (`point`: "new": the point the sliders were just set to; "same": the
        sliders as they are, the class changed; None: nothing), whether the server sent its own
        picture of it too (if not, and the page cannot draw after all, it asks /decode), and a new
        version each time, so that the page sees a plan even when its numbers are the ones it had."""
        return {**ex.browser_plan(values, alphas), "n_more": N_CLASS_SLIDERS, "n_directions": N_DIRECTIONS, "decode_fn": self.decode_fn,
                "version": next(self._plans), "point": point, "server_drew": server_drew}  # fmt: skip

    def decoder_step(self, api_name: str | bool = False) -> dict:
        """The event after a new model: its decoder exported for the page, then named in the plan.
        One at a time in Gradio's queue (exports take turns anyway): a class opening Explore
        together waits there, not in the server's worker threads."""
        return dict(fn=self.on_decoder, inputs=self.session, outputs=[self.plan, self.map, self.grids[self.map]], api_name=api_name,
                    api_visibility="undocumented", show_progress="hidden", concurrency_id="explore-decoder", concurrency_limit=1)  # fmt: skip

    def on_decoder(self, session: Session):
        """Export the explored model's decoder for the page (once per weights: every session on
        a shipped model shares one file) and tell the page where it is, with the latent map's
        numbers when the map was left to the page. A model the exporter cannot handle stays on
        the server's path, and the page says why (its map drawn here)."""
        ex = session.views.get("explorer")
        nothing = (gr.skip(),) * 3
        if ex is None or self.decoders is None or ex.browser_reason or ex.decoder:
            return nothing
        try:
            ex.decoder = "gradio_api/file=" + urllib.parse.quote(str(decoder_file(ex.card.model, self.decoders)))
        except Exception as e:  # the exporter fails in many ways; the server's path still works
            ex.decoder_error = f"its decoder could not be exported for the browser ({type(e).__name__}: {e})"
        if session.views.get("explorer") is not ex:  # another model was opened meanwhile: its plan stands
            return nothing
        if not ex.map_in_page:
            return self.plan_of(ex, point=None), gr.skip(), gr.skip()
        if ex.decoder_error:
            return self.plan_of(ex, point=None), self.map_picture(ex), gr.skip()
        return self.plan_of(ex, point=None), gr.skip(), self.map_out(ex, True)[1]

    def class_updates(self, ex: Explorer) -> dict:
        """The class picker: shown for conditional models, with their class names."""
        names = [(name, k) for k, name in enumerate(ex.classes)]
        cfg = ex.card.model.config
        blending = bool(names) and cfg.blend_label >= 0
        return {
            self.class_box: gr.Accordion(visible=bool(names)),
            self.cls: gr.Dropdown(choices=names, value=max(cfg.label, 0) if names else None),
            self.cls_other: gr.Dropdown(choices=[("none", -1), *names], value=cfg.blend_label if blending else -1),
            self.cls_mix: gr.Slider(value=cfg.blend if blending else 0.5),
            self.guidance: gr.Slider(value=getattr(cfg, "guidance", 2.0), visible=ex.guided),
            **{slider: self.more_slider(ex, k) for k, slider in enumerate(self.cls_more)},
            self.classes_tab: gr.Tab(visible=bool(names)),
        }

    @staticmethod
    def more_slider(ex: Explorer, k: int):
        """The k-th "more like" slider: class k's name and amount, hidden past the classes."""
        if k >= len(ex.classes):
            return gr.Slider(value=0, visible=False)
        mix = ex.card.model.config.class_mix
        return gr.Slider(value=mix[k] if mix else 0, label=f"more like {ex.classes[k]}", visible=True)

    def on_every_class(self, session: Session, *values):
        ex = self.explorer(session)
        sliders, alphas, page_draws = self.split(values)
        try:
            z, labels = ex.every_class_latents(ex.z_from(sliders, alphas))
        except USER_ERRORS as e:
            raise user_error(str(e)) from None
        return self.grid_out(ex, z, min(len(labels), 10), page_draws, labels=labels, width=800, retry="classes-run")

    def on_class(self, session: Session, label, other, mix, guidance, *values):
        """Draw the same latent as another class (or between two, or with more of some classes'
        embeddings); the latent map follows."""
        ex = self.explorer(session)
        if label is None:
            raise user_error("Pick a class to draw.")
        more = values[:N_CLASS_SLIDERS]
        sliders, alphas, page_draws = self.split(values[N_CLASS_SLIDERS:])
        try:
            ex.set_class(int(label), -1 if other is None else int(other), float(mix or 0), guidance)
            ex.set_class_mix(list(more))
        except USER_ERRORS as e:
            raise user_error(str(e)) from None
        plan, view = self.point(ex, page_draws, "same", sliders, alphas)
        latent_plane = (gr.skip(), gr.skip())
        if self.has_map(ex):
            latent_plane = self.map_out(ex, page_draws)
        return view, latent_plane[0], plan, latent_plane[1]

    def process_updates(self, ex: Explorer) -> dict:
        """The generation-process tab: shown for models that make samples in steps."""
        model = ex.card.model
        steps = "sample_steps" in getattr(model, "sample_params", ())
        return {
            self.process_tab: gr.Tab(visible=ex.has_process),
            self.process_md: getattr(model, "process_note", ""),
            self.process_dir: gr.Radio(value="generate", visible=ex.has_inference),
            self.process_steps: gr.Slider(value=model.config.sample_steps if steps else 0, visible=steps),
        }

    def on_process(self, session: Session, seed, direction, sample_steps):
        ex = self.explorer(session)
        if seed is None or seed < 0:
            raise user_error("The seed must be a whole number, 0 or more.")
        try:
            frames = ex.process(int(seed), direction=direction, sample_steps=sample_steps)
        except USER_ERRORS as e:
            raise user_error(str(e)) from None
        ex.frames = frames  # the step slider shows these
        last = len(frames) - 1
        gif = self.write("process.gif", lambda p: p.write_bytes(gif_bytes([pic for _, pic in frames], fps=4, bounce=False)))
        return gr.Slider(maximum=last, value=last), self.frame_picture(frames, last), gif

    def on_process_frame(self, session: Session, index):
        frames = getattr(self.explorer(session), "frames", None)
        if not frames:
            raise user_error("Press “Show the steps” first.")
        return self.frame_picture(frames, int(min(max(int(index or 0), 0), len(frames) - 1)))

    @staticmethod
    def frame_picture(frames, i: int):
        return gr.Image(value=frames[i][1], label=f"Step {i} of {len(frames) - 1}: {frames[i][0]}")

    @staticmethod
    def describe(ex: Explorer) -> str:
        c = ex.card
        data = c.data.name if c.data is not None else c.meta.get("data", {}).get("spec", "unknown data")
        lines = [f"**{c.name}**: {a_model(c.family)} on `{Path(str(data)).name}`, {c.latent_dim}-D latent, {c.meta.get('step', 0):,} steps."]
        if c.encodes:
            shown = min(N_SLIDERS, c.latent_dim)
            note = "ordered by average KL, most used first" if c.data is not None else "in their own order (the data is not at hand to rank them)"
            lines.append(f"Sliders set the {shown} latent coordinates {note}; the rest stay at 0.")
            if ex.directions_kind == "attributes":
                lines.append("The attribute sliders move along the gap between the mean codes of the pictures with and without each label or factor (1 = the whole gap).")
        elif len(ex.directions):
            lines.append("Sliders set the raw latent coordinates; the principal directions move along GANSpace axes.")
        else:
            lines.append(getattr(c.model, "latent_note", "Sliders set the raw latent coordinates."))
        if ex.classes:
            lines.append(f"Conditioned on {len(ex.classes)} classes: pick the class to draw (the latent stays, so the same style is drawn as another class), or blend two.")
        return " ".join(lines)

    @staticmethod
    def scatter_picture(ex: Explorer):
        c = ex.card
        if not c.encodes or c.data is None:
            return None
        with torch.no_grad():
            mu = sampling.encode(c.model, c.data.x[:2000])
        labels = c.data.y[:2000] if c.data.y is not None else None
        return figure_array(latent_scatter(mu, labels, c.data.label_names))

    # -- moving around -----------------------------------------------------------------------
    @staticmethod
    def explorer(session: Session) -> Explorer:
        ex = session.views.get("explorer")
        if ex is None:
            raise user_error("Pick a model to explore first.")
        return ex

    def on_slide(self, session: Session, *values):
        ex = self.explorer(session)
        return ex.draw(ex.z_from(list(values[:N_SLIDERS]), list(values[N_SLIDERS:])))

    @staticmethod
    def split(values) -> tuple[list, list, bool]:
        """A listener's trailing inputs: (latent sliders, direction sliders, page_draws)."""
        k = N_SLIDERS + N_DIRECTIONS
        return list(values[:N_SLIDERS]), list(values[N_SLIDERS:k]), bool(values[k]) if len(values) > k else False

    @staticmethod
    def page_can(ex: Explorer, page_draws) -> bool:
        """Whether the page draws this model's pictures: it says it can (PAGE_JS), and it has the decoder."""
        return bool(page_draws) and ex.browser_reason is None and ex.decoder is not None

    def point(self, ex: Explorer, page_draws, point: str = "new", values: list | None = None, alphas: list | None = None) -> tuple:
        """(the plan, the picture) for the point the sliders show: the server's picture, or none
        (gr.skip) when the page draws it from the plan."""
        page = self.page_can(ex, page_draws)
        plan = self.plan_of(ex, values, alphas, point=point, server_drew=not page)
        return plan, gr.skip() if page else ex.draw(ex.z_from(plan["values"], plan["alphas"]))

    def grid_out(self, ex: Explorer, z: torch.Tensor, nrow: int, page_draws, *, labels: torch.Tensor | None = None,
                 width: int = GRID_WIDTH, retry: str) -> tuple:  # fmt: skip
        """(a grid of the pictures at latents z, its plan): the server's picture, or the numbers
        for the page to draw it (Explorer.grid_plan; `retry`: the button that asks again, which
        the page presses when it could not draw)."""
        if self.page_can(ex, page_draws):
            return gr.skip(), {**ex.grid_plan(z, nrow, labels, width), "version": next(self._plans), "retry": retry}
        return ex.grid(sampling.decode(ex.card.model, z, labels), nrow, width), gr.skip()

    @staticmethod
    def z_slider(value: float, **kw):
        """A latent slider set to `value`, its range ±3 or wider to hold it (a seed's latent can
        pass 3: a slider holding a value outside its range makes every listener that reads it
        fail Gradio's check)."""
        reach = max(Z_RANGE, math.ceil(abs(float(value)) * 10) / 10)
        return gr.Slider(value=value, minimum=-reach, maximum=reach, **kw)

    def slider_updates(self, ex: Explorer, values: list[float]):
        zs = [self.z_slider(v) for v in values] + [gr.Slider()] * (N_SLIDERS - len(values))
        ds = [gr.Slider(value=0)] * N_DIRECTIONS
        return [*zs, *ds]

    def on_seed(self, session: Session, seed, page_draws=False):
        ex = self.explorer(session)
        if seed is None or seed < 0:
            raise user_error("The seed must be a whole number, 0 or more.")
        values = ex.jump(self.seed_base(ex, seed), int(seed))
        return (*self.slider_updates(ex, values), *self.point(ex, page_draws))

    @staticmethod
    def seed_base(ex: Explorer, seed) -> torch.Tensor:
        """The whole prior sample for a seed (coordinates without a slider keep their values)."""
        return sampling.latents(ex.card.model, 1, int(seed))[0]

    def on_random(self, session: Session, page_draws=False):
        seed = random.randrange(0, 100_000)
        return (seed, *self.on_seed(session, seed, page_draws))

    def on_reset(self, session: Session, page_draws=False):
        ex = self.explorer(session)
        values = ex.jump(torch.zeros(ex.card.latent_dim))
        return (*self.slider_updates(ex, values), *self.point(ex, page_draws))

    def on_map_click(self, session: Session, page_draws, evt: gr.SelectData):
        ex = self.explorer(session)
        if ex.card.latent_dim != 2:
            return (*[gr.Slider()] * N_SLIDERS, gr.skip(), gr.update())
        x, y = evt.index
        height, width = ex.grid_size(MAP_STEPS * MAP_STEPS, MAP_STEPS)  # the map's picture, drawn here or in the page
        lx, ly = map_click_to_latent(x, y, width, height, steps=MAP_STEPS)
        values = ex.jump(torch.tensor([lx, ly]))
        return (*[self.z_slider(v) for v in values], *[gr.Slider()] * (N_SLIDERS - len(values)), *self.point(ex, page_draws))

    def on_map_server(self, session: Session):
        """The latent map drawn by the server (the page asks when it could not draw it)."""
        ex = self.explorer(session)
        return self.map_picture(ex) if self.has_map(ex) else gr.skip()

    @staticmethod
    def has_map(ex: Explorer) -> bool:
        return ex.card.latent_dim == 2 and not ex.card.is_points

    def map_out(self, ex: Explorer, page_draws) -> tuple:
        """(the latent map drawn here, or its numbers for the page: grid_out)."""
        return self.grid_out(ex, latent_map_latents(2, steps=MAP_STEPS), MAP_STEPS, page_draws, retry="explore-server-map")

    @staticmethod
    def map_picture(ex: Explorer):
        return ex.grid(latent_map(ex.card.model, steps=MAP_STEPS), nrow=MAP_STEPS)

    def on_encode(self, session: Session, path: str | None, page_draws=False):
        """A picture into the latent space: a VAE encodes it; a GAN's latent is searched for it,
        the best match so far shown as the search goes, with its error."""
        session.adopt(path)
        ex = self.explorer(session)
        if not path:
            yield (*[gr.Slider()] * (N_SLIDERS + N_DIRECTIONS), gr.skip(), gr.update(), gr.update())
            return
        yield from self.place(ex, self.read_picture(ex, path), page_draws)

    def on_sketch(self, session: Session, sketch, page_draws=False):
        """The sketchpad's drawing into the latent space, as an uploaded picture would go."""
        ex = self.explorer(session)
        if ex.card.is_points or not (ex.card.encodes or hasattr(ex.card.model, "decode_with_grad")):
            raise user_error(f"Only a VAE or a GAN on pictures can take a drawing; this one is {a_model(ex.card.family)}.")
        try:
            x = sketch_to_tensor(sketch, ex.card.model.config.data_shape)
        except USER_ERRORS as e:
            raise user_error(str(e)) from None
        yield from self.place(ex, x, page_draws)

    def place(self, ex: Explorer, x: torch.Tensor, page_draws=False):
        """Yield the sliders, the picture and a note for picture x put into the latent space."""
        if ex.card.encodes:
            z = sampling.encode(ex.card.model, x)[0]
            yield (*self.slider_updates(ex, ex.jump(z)), *self.point(ex, page_draws), "Encoded: the sliders are at the posterior mean of its code.")
            return
        try:
            for step, z, err in invert(ex.card.model, x):
                note = f"Searching the latent: step {step} of {INVERT_STEPS}, RMS pixel error {err:.3f} (0 = the same picture, 1 = opposite)."
                if step < INVERT_STEPS:
                    yield (*[gr.Slider()] * (N_SLIDERS + N_DIRECTIONS), gr.skip(), ex.draw(z), note)
        except USER_ERRORS as e:
            raise user_error(str(e)) from None
        note = f"Found after {INVERT_STEPS} steps: RMS pixel error {err:.3f}. The generator draws the closest picture it can; edit it with the sliders."
        yield (*self.slider_updates(ex, ex.jump(z)), *self.point(ex, page_draws), note)

    @staticmethod
    def read_picture(ex: Explorer, path: str) -> torch.Tensor:
        if ex.card.is_points:
            raise user_error(f"This {ex.card.model.label} models 2-D points, not images.")
        try:
            return image_to_tensor(path, ex.card.model.config.data_shape)
        except USER_ERRORS as e:
            raise user_error(str(e)) from None

    def encode_file(self, ex: Explorer, path: str) -> torch.Tensor:
        x = self.read_picture(ex, path)
        if not ex.card.encodes:
            raise user_error(f"Only a VAE can encode an image (a model with an encoder); this one is {a_model(ex.card.family)}. Pick a VAE.")
        return sampling.encode(ex.card.model, x)[0]

    def on_export(self, session: Session, scale, smooth, *values):
        """The picture at the sliders, its pixels upscaled `scale` times (crisp or smooth)."""
        ex = self.explorer(session)
        z = ex.z_from(list(values[:N_SLIDERS]), list(values[N_SLIDERS:]))
        try:
            pic, png, rec = ex.export_traced(z, int(scale or 1), bool(smooth))
        except USER_ERRORS as e:
            raise user_error(str(e)) from None
        name = f"{ex.card.name}-{pic.shape[0]}px".replace(" ", "-")
        png_path = self.write(f"{name}.png", lambda p: p.write_bytes(png))
        json_path = str(Path(png_path).with_suffix(".json"))
        Path(json_path).write_text(json.dumps(rec, indent=1))
        return [png_path, json_path]

    def on_onnx(self, session: Session):
        """The explored model's decoder (VAE) or generator (GAN) as an ONNX file, for a web page or
        any ONNX runtime: z (and a conditional model's class weights w) in, pictures out."""
        ex = self.explorer(session)
        try:
            data = onnx_bytes(ex.card.model)
        except USER_ERRORS as e:
            raise user_error(str(e)) from None
        return [self.write(f"{ex.card.name}.onnx".replace(" ", "-"), lambda p: p.write_bytes(data))]

    @staticmethod
    def write(name: str, save) -> str:
        """A file for the user to download. Gradio copies it into its own cache, so ours are
        pruned after an hour: a long class never fills the disk."""
        folder = Path(tempfile.gettempdir()) / "playground-exports"
        folder.mkdir(exist_ok=True)
        prune(folder, EXPORT_TTL)
        path = folder / uuid.uuid4().hex[:12] / name  # a folder each, so the download keeps its name
        path.parent.mkdir()
        save(path)
        return str(path)

    def interpolation(self, session: Session, seed_a, seed_b, img_a, img_b, mode, steps) -> tuple[Explorer, torch.Tensor]:
        """The explored model and the latents of the path from A (a seed, or a VAE's encoded
        picture) to B."""
        session.adopt(img_a)
        session.adopt(img_b)
        ex = self.explorer(session)
        z0 = self.encode_file(ex, img_a) if img_a else self.seed_base(ex, seed_a or 0)
        z1 = self.encode_file(ex, img_b) if img_b else self.seed_base(ex, seed_b or 0)
        try:
            return ex, sampling.interpolate(z0, z1, int(steps or 2), mode)
        except ConfigError as e:
            raise user_error(str(e)) from None

    def on_interpolate(self, session: Session, seed_a, seed_b, img_a, img_b, mode, steps, page_draws=False):
        """The path as a strip of pictures (drawn here, or its numbers for the page to draw)."""
        ex, z = self.interpolation(session, seed_a, seed_b, img_a, img_b, mode, steps)
        return self.grid_out(ex, z, len(z), page_draws, retry="interp-run")

    def on_interpolate_gif(self, session: Session, seed_a, seed_b, img_a, img_b, mode, steps):
        ex, z = self.interpolation(session, seed_a, seed_b, img_a, img_b, mode, steps)
        gif = self.gif(ex, sampling.decode(ex.card.model, z))
        return self.write("interpolation.gif", lambda p: p.write_bytes(gif))

    # -- breeding ------------------------------------------------------------------------------
    @staticmethod
    def parse_parents(text: str, n: int) -> list[int]:
        """'1, 4' -> [0, 3]: the children numbered as the gallery numbers them (from 1)."""
        picked = []
        for part in (text or "").replace(";", ",").replace(" ", ",").split(","):
            if not part:
                continue
            if not part.isdigit() or not 1 <= int(part) <= n:
                raise user_error(f"Parents are children's numbers from 1 to {n}, separated by commas; got {part!r}.")
            if int(part) - 1 not in picked:
                picked.append(int(part) - 1)
        return picked

    @staticmethod
    def breed_frame(ex: Explorer) -> tuple:
        lineage = ex.lineage
        pictures = [(ex.draw(z), str(i + 1)) for i, z in enumerate(lineage.newest)]
        # a new generation: no child is picked yet, so none looks selected
        return gr.Gallery(value=pictures, selected_index=None), ", ".join(str(i + 1) for i in lineage.picked), lineage.describe()

    def on_breed_start(self, session: Session, seed):
        ex = self.explorer(session)
        ex.lineage = Lineage.start(ex.card.model, int(seed or 0))
        return self.breed_frame(ex)

    def on_breed(self, session: Session, parents, mutation, seed):
        ex = self.explorer(session)
        if ex.lineage is None:
            raise user_error("Make a first generation first: press New first generation.")
        ex.lineage.picked = self.parse_parents(parents, len(ex.lineage.newest))
        try:
            ex.lineage.breed(float(mutation), int(seed or 0) + len(ex.lineage.generations))
        except ConfigError as e:
            raise user_error(str(e)) from None
        return self.breed_frame(ex)

    def on_breed_pick(self, session: Session, parents, evt: gr.SelectData):
        ex = self.explorer(session)
        if ex.lineage is None:
            return gr.skip(), gr.skip()
        ex.lineage.picked = self.parse_parents(parents, len(ex.lineage.newest))
        try:
            ex.lineage.pick(int(evt.index))
        except ConfigError as e:
            raise user_error(str(e)) from None
        return ", ".join(str(i + 1) for i in ex.lineage.picked), ex.lineage.describe()

    # -- loops ---------------------------------------------------------------------------------
    def on_loop(self, session: Session, keys, bred, steps, mode):
        ex = self.explorer(session)
        if bred:
            if ex.lineage is None or len(ex.lineage.picked) < 2:
                raise user_error("Pick at least 2 children in the Breed tab first, or untick it and give seeds.")
            keyframes = ex.lineage.newest[ex.lineage.picked]
        else:
            seeds = [part for part in (keys or "").replace(";", ",").replace(" ", ",").split(",") if part]
            if not all(s.isdigit() for s in seeds):
                raise user_error(f"Keyframes are seeds (whole numbers 0 or more) separated by commas; got {keys!r}.")
            keyframes = torch.stack([self.seed_base(ex, int(s)) for s in seeds]) if seeds else torch.zeros(0, ex.card.latent_dim)
        try:
            z = loop_latents(keyframes, int(steps), mode)
        except ConfigError as e:
            raise user_error(str(e)) from None
        frames = sampling.decode(ex.card.model, z)
        pictures = to_uint8(frames, ex.scale) if not ex.card.is_points else None
        gif = gif_bytes(pictures, bounce=False) if pictures is not None else self.gif(ex, frames)
        files = [self.write("loop.gif", lambda p: p.write_bytes(gif))]
        if ex.card.is_points:  # the path drawn, no sheet of frames
            return ex.grid(frames, nrow=1), files
        video = mp4_bytes(pictures)
        files.append(self.write("loop.mp4", lambda p: p.write_bytes(video)))
        sheet = sprite_sheet(frames.cpu(), int(steps))
        files.append(self.write("loop-sprites.png", lambda p: p.write_bytes(sheet)))
        return ex.grid(frames, nrow=int(steps)), files

    def traversal(self, session: Session, steps, span, rows, *values) -> tuple[Explorer, torch.Tensor, int]:
        """The explored model, the latents of a traversal around the sliders' point (a row per
        direction: a GAN's principal directions, a VAE's most used dimensions), and its rows."""
        ex = self.explorer(session)
        sliders, alphas, _ = self.split(values)
        z = ex.z_from(sliders, alphas)
        if ex.directions_kind == "principal":
            dirs, absolute = ex.directions[: int(rows)], False
        else:
            dirs, absolute = torch.eye(ex.card.latent_dim)[ex.sliders[: int(rows)]], True
        return ex, traversal_latents(z, dirs, steps=int(steps), span=float(span), absolute=absolute), len(dirs)

    def on_traverse(self, session: Session, steps, span, rows, *values):
        """The traversal as a grid (drawn here, or its numbers for the page to draw)."""
        ex, z, _ = self.traversal(session, steps, span, rows, *values)
        return self.grid_out(ex, z, int(steps), self.split(values)[2], retry="trav-run")

    def on_traverse_gif(self, session: Session, steps, span, rows, *values):
        """The traversal as an animated GIF, one frame per column: every row moves at once."""
        ex, z, n_rows = self.traversal(session, steps, span, rows, *values)
        images = sampling.decode(ex.card.model, z)
        if ex.card.is_points:
            frames = [ex.grid(images[: i + 1], nrow=1) for i in range(len(images))]  # the path drawn so far
        else:
            cols = images.view(n_rows, int(steps), *images.shape[1:]).transpose(0, 1)  # (steps, rows, C, H, W)
            frames = [ex.grid(col, nrow=n_rows) for col in cols]
        gif = gif_bytes(frames, bounce=not ex.card.is_points)
        return self.write("traversal.gif", lambda p: p.write_bytes(gif))

    @staticmethod
    def gif(ex: Explorer, frames: torch.Tensor) -> bytes:
        if ex.card.is_points:  # the path drawn so far, one more point per frame
            return gif_bytes([ex.grid(frames[: i + 1], nrow=1) for i in range(len(frames))], bounce=False)
        return gif_bytes(to_uint8(frames, ex.scale))
