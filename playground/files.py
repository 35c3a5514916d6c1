"""Files the app leaves behind, cleaned up: temporary folders pruned by age, half-written
checkpoints swept away, uploads deleted with the session that owns them.

What piles up on a class's server, and where it goes:
- uploads (data, checkpoints, images): Gradio's temporary copies, deleted when the session that
  uploaded them ends (`Session.adopt`), and at start-up whatever an earlier run left that is
  older than an hour (`prune`);
- exports (PNG, GIF): one folder each, pruned after an hour;
- a Save killed mid-write leaves `.<name>.<random>.tmp` beside the checkpoint (the old checkpoint
  is intact: the write goes to the temporary file, then a rename); swept at start-up once it is
  older than ten minutes (`sweep_partial_saves`), so a Save in progress is never touched.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

PARTIAL_SAVE = ".*.tmp"  # checkpoint.save_checkpoint's temporary name


def prune(folder: str | Path, older_than: float) -> int:
    """Delete the entries of `folder` (files or whole sub-folders) last changed more than
    `older_than` seconds ago. Returns how many went."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    now, gone = time.time(), 0
    for entry in folder.iterdir():
        try:
            if now - entry.stat().st_mtime <= older_than:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            gone += 1
        except OSError:
            continue  # taken by someone else meanwhile
    return gone


def sweep_partial_saves(root: str | Path, older_than: float = 600.0) -> int:
    """Delete the temporary files of interrupted Saves anywhere under `root`."""
    root = Path(root)
    if not root.is_dir():
        return 0
    now, gone = time.time(), 0
    for tmp in root.rglob(PARTIAL_SAVE):
        try:
            if tmp.is_file() and now - tmp.stat().st_mtime > older_than:
                tmp.unlink()
                gone += 1
        except OSError:
            continue
    return gone


def remove_upload(path: str | Path) -> None:
    """Delete an uploaded temporary copy, and its folder when that is left empty (Gradio keeps
    each upload in a folder of its own)."""
    path = Path(path)
    try:
        path.unlink(missing_ok=True)
        path.parent.rmdir()
    except OSError:
        pass  # the folder holds another file, or is gone already
