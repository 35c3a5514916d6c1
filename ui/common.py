"""What every tab shares: where checkpoints live and which errors are the user's to fix."""

from __future__ import annotations

import os
from pathlib import Path

import gradio as gr

from playground.checkpoint import CheckpointError
from playground.data import DataError
from playground.models import ConfigError

ROOT = Path(__file__).resolve().parent.parent
# shipped models in checkpoints/, shared ones in checkpoints/shared/, each session's own in
# checkpoints/sessions/<id>/ (listed to that session only)
CHECKPOINT_ROOT = Path(os.environ.get("PLAYGROUND_CHECKPOINTS", ROOT / "checkpoints"))

# Errors whose message tells the user what to change; anything else is a bug and is logged.
USER_ERRORS = (ConfigError, DataError, CheckpointError)


def session_dir(request: gr.Request | None) -> Path:
    """This browser session's private checkpoint folder."""
    sid = getattr(request, "session_hash", None) or "local"
    safe = "".join(ch for ch in sid if ch.isalnum())[:32] or "local"
    return CHECKPOINT_ROOT / "sessions" / safe
