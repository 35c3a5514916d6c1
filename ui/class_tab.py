"""The Class tab: the teacher's console (only in the teacher's page, ui.teacher_demo).

A wall of every student's samples, refreshed every few seconds; a spotlight for one of them
(its full-screen button is for the projector); pause, resume or stop everyone; send the
teacher's own Train tab settings, a student's settings or a lesson to every student's page; a
results table that fills in as runs stop. The logic is playground/classroom.py.
"""

from __future__ import annotations

import gradio as gr
import numpy as np
import pandas as pd
from PIL import Image

from playground import lessons
from playground.classroom import Classroom, state_of
from playground.data import BUILTIN_IMAGES, BUILTIN_POINTS
from playground.models import family_of
from playground.session import Session, status_text

from .common import USER_ERRORS, user_error

REFRESH = 2.0  # seconds between two refreshes of the wall and the table
COLUMNS = 6  # pictures in a row of the wall
THUMB = 192  # pixels: the wall's pictures are scaled down to at most this side, with a full row
WALL_WIDTH = COLUMNS * THUMB  # 1,152 pixels: about the width the wall spans; a short row spreads across it
RESULT_COLUMNS = ["student", "family", "data", "steps", "seconds", "state", "result"]
NO_SPOTLIGHT = "Click a student's samples on the wall to show them here, large (its full-screen button, top right, for the projector)."


def thumb_side(students: int) -> int:
    """The side of the wall's pictures: the gallery spreads a row of fewer than COLUMNS across
    its width, and a 192 px picture stretched over a third of it (three students) was blurred."""
    return max(THUMB, min(3 * THUMB, WALL_WIDTH // max(1, min(students, COLUMNS))))


def thumbnail(picture: np.ndarray, side: int = THUMB) -> np.ndarray:
    h, w = picture.shape[:2]
    if max(h, w) <= side:
        return picture
    scale = side / max(h, w)
    img = Image.fromarray(np.ascontiguousarray(picture, dtype=np.uint8))
    return np.asarray(img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS))


def caption(entry: dict) -> str:
    if entry["family"] is None:
        return f"{entry['name']} · no model yet"
    label = family_of(entry["family"]).label
    return f"{entry['name']} · {label} on {entry['data']} · step {entry['step']:,} · {entry['state']}"


def counts_text(counts: dict) -> str:
    n = counts["students"]
    if not n:
        return "**No students yet.** Their pages join the class as they open the app."
    parts = [f"**{n} student{'s' if n != 1 else ''}**"]
    parts += [f"{counts[k]} {k}" for k in ("training", "waiting", "paused", "stopped", "no model") if counts[k]]
    return " · ".join(parts)


class ClassTab:
    """Builds the tab inside the current gr.Blocks and wires its events. `train_tab` is the
    teacher's own Train tab: its settings are the ones "Send my settings" sends."""

    def __init__(self, session: gr.State, classroom: Classroom, train_tab):
        self.session, self.classroom, self.train_tab = session, classroom, train_tab
        self.build()
        self.wire()

    def build(self):
        self.counts = gr.Markdown(counts_text(self.classroom.counts()), elem_id="class-counts")
        with gr.Row():
            self.pause_btn = gr.Button("Pause everyone", elem_id="pause-all")
            self.resume_btn = gr.Button("Resume everyone", elem_id="resume-all")
            self.stop_btn = gr.Button("Stop everyone", variant="stop", elem_id="stop-all")
        self.wall = gr.Gallery(label="Every student's samples, as they see them (click one to spotlight it)", columns=COLUMNS, height="auto",
                               object_fit="contain", allow_preview=False, format="png", interactive=False, elem_id="wall")  # fmt: skip
        with gr.Row(equal_height=False):
            with gr.Column(scale=2):
                self.spot = gr.Image(label="Spotlight", format="png", type="numpy", interactive=False, height=420,
                                     buttons=["fullscreen"], elem_classes=["pixelated"], elem_id="spotlight")  # fmt: skip
            with gr.Column(scale=1):
                self.spot_md = gr.Markdown(NO_SPOTLIGHT, elem_id="spotlight-status")
                self.send_theirs = gr.Button("Send the spotlighted student's settings to everyone", elem_id="send-theirs")
                self.send_mine = gr.Button("Send my Train tab's settings to everyone", elem_id="send-mine")
                choices = [(lesson.title, key) for key, lesson in lessons.LESSONS.items()]
                self.lesson = gr.Dropdown(choices, value=choices[0][1], label="Lesson", elem_id="class-lesson")
                self.send_lesson = gr.Button("Send this lesson to everyone", elem_id="send-lesson")
        self.results = gr.Dataframe(pd.DataFrame(columns=RESULT_COLUMNS), label="Results (a run's result appears when it stops or pauses)",
                                    interactive=False, wrap=True, elem_id="results")  # fmt: skip
        self.timer = gr.Timer(REFRESH)

    def wire(self):
        S, quiet = self.session, dict(concurrency_limit=None, show_progress="hidden")
        shown = [self.counts, self.wall, self.spot, self.spot_md, self.results]
        self.timer.tick(self.on_refresh, S, shown, api_name="class_refresh", api_visibility="undocumented", **quiet)
        self.wall.select(self.on_pick, S, [self.spot, self.spot_md], api_name=False, **quiet)
        for btn, fn, name in ((self.pause_btn, self.on_pause, "pause_all"), (self.resume_btn, self.on_resume, "resume_all"), (self.stop_btn, self.on_stop, "stop_all")):
            btn.click(fn, S, self.counts, api_name=name, **quiet)
        tt = self.train_tab
        from .train_tab import with_names

        self.send_mine.click(with_names(self.on_send_mine, tt.names), [S, *tt.c.values()], None, api_name="send_my_settings", **quiet)
        self.send_theirs.click(self.on_send_theirs, S, None, api_name="send_their_settings", **quiet)
        self.send_lesson.click(self.on_send_lesson, [S, self.lesson], None, api_name="send_lesson", **quiet)

    # -- handlers ----------------------------------------------------------------------------------
    def view(self, session: Session) -> dict:
        return session.views.setdefault("class", {"order": [], "wall_key": None, "picked": None, "spot_key": None})

    def on_refresh(self, session: Session) -> dict:
        """The counts, the wall and the results; what did not change since the last refresh is
        not sent again."""
        view, wall = self.view(session), self.classroom.wall()
        key = tuple((e["number"], e["name"], e["step"], e["state"]) for e in wall)
        out = {self.counts: counts_text(self.classroom.counts())}
        if key != view["wall_key"]:
            view["wall_key"], view["order"] = key, [e["number"] for e in wall]
            side = thumb_side(len(wall))
            out[self.wall] = [(thumbnail(e["picture"], side) if e["picture"] is not None else blank(), caption(e)) for e in wall]
        out.update(self.spotlight(session, only_changed=True))
        rows = [{**r, "family": family_of(r["family"]).label} for r in self.classroom.results()]
        out[self.results] = pd.DataFrame(rows, columns=RESULT_COLUMNS)
        return out

    def on_pick(self, session: Session, evt: gr.SelectData) -> dict:
        order = self.view(session)["order"]
        if evt.index is None or not 0 <= evt.index < len(order):
            return {}
        self.view(session)["picked"] = order[evt.index]
        return self.spotlight(session)

    def spotlight(self, session: Session, only_changed: bool = False) -> dict:
        view = self.view(session)
        if view["picked"] is None:
            return {}
        s = self.classroom.student(view["picked"])
        if s is None:
            view["picked"] = view["spot_key"] = None
            return {self.spot: None, self.spot_md: "That student has left. " + NO_SPOTLIGHT}
        t, shown = s.trainer, s.shown
        key = (s.number, s.name, shown[0] if shown else None, state_of(s))
        if only_changed and key == view["spot_key"]:
            return {}
        view["spot_key"] = key
        name = s.name or f"student {s.number}"
        if t is None:
            return {self.spot: None, self.spot_md: f"**{name}** has no model yet."}
        label = family_of(t.model.family).label
        text = f"### {name}\n{label} on {t.data.name}\n\n{status_text(t, state=state_of(s))}"
        return {self.spot: shown[1] if shown else None, self.spot_md: text}

    def on_pause(self, session: Session) -> str:
        gr.Info(f"Paused {self.classroom.pause_all()} training(s).")
        return counts_text(self.classroom.counts())

    def on_resume(self, session: Session) -> str:
        gr.Info(f"Resumed {self.classroom.resume_all()} training(s).")
        return counts_text(self.classroom.counts())

    def on_stop(self, session: Session) -> str:
        gr.Info(f"Stopped {self.classroom.stop_all()} training(s); every model stays where it is.")
        return counts_text(self.classroom.counts())

    def on_send_mine(self, session: Session, *values) -> None:
        try:
            settings = self.train_tab.settings(session, values)
        except USER_ERRORS as e:
            raise user_error(str(e)) from None
        if settings.data not in BUILTIN_POINTS + BUILTIN_IMAGES:
            raise user_error("Only settings on a builtin data set can be sent: the students do not have your uploaded file.")
        self.sent(self.classroom.push_settings(settings), "your settings")

    def on_send_theirs(self, session: Session) -> None:
        picked = self.view(session)["picked"]
        s = self.classroom.student(picked) if picked is not None else None
        if s is None or s.settings is None:
            raise user_error("Spotlight a student who has trained a model first: click their samples on the wall.")
        if s.settings.data not in BUILTIN_POINTS + BUILTIN_IMAGES:
            raise user_error("That student trains on their own uploaded file, which the others do not have.")
        name = s.name or f"student {s.number}"
        self.sent(self.classroom.push_settings(s.settings, sender=f"your teacher ({name}'s settings)", skip=s), f"{name}'s settings")

    def on_send_lesson(self, session: Session, key: str) -> None:
        try:
            n = self.classroom.push_lesson(key)
        except USER_ERRORS as e:
            raise user_error(str(e)) from None
        self.sent(n, f"the lesson “{lessons.get(key).title}”")

    @staticmethod
    def sent(n: int, what: str) -> None:
        if n:
            gr.Info(f"Sent {what} to {n} student{'s' if n != 1 else ''}: their pages show it within a few seconds.")
        else:
            gr.Warning("There are no students to send it to yet.")


def blank() -> np.ndarray:
    """The wall's picture of a student with no model yet."""
    return np.full((THUMB // 2, THUMB // 2, 3), 235, dtype=np.uint8)
