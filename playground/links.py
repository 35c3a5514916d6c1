"""Links that open the app in a state: a teacher hands out one URL and every student's Train tab
shows the same family, data and settings (and, optionally, a tab or a lesson).

    ?family=vae&data=digits&latent_dim=2&beta=4&tab=explore
    ?lesson=mode-collapse

`settings_from_query(params)` turns a URL's query parameters into a `Link` (the TrainSettings to
show, the tab to open, the lesson to start) and the list of what was not understood;
`query_from_settings(settings)` makes the query string for the settings a user has (only what
differs from the family's defaults for that data, so links stay short).

A link is untrusted input: only builtin data sets are accepted (a link never makes the server
read a path), every value is checked by its declaration, and anything wrong is reported and left
out (the rest of the link still applies).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

from .data import BUILTIN_COLOUR, BUILTIN_IMAGES, BUILTIN_POINTS, IMAGE_SIZE_RANGE
from .lessons import LESSONS
from .models import ConfigError, default_batch_size, default_config, family_of, settings_for
from .session import COLOURS, TrainSettings, default_side

TABS = ("train", "explore", "inspect")
OWN = ("family", "data", "image_size", "colour", "batch_size", "seed", "tab", "lesson")  # not model settings
BATCH_RANGE = (8, 512)


@dataclass
class Link:
    settings: TrainSettings | None = None  # None: the link sets no Train-tab settings
    tab: str | None = None
    lesson: str | None = None
    problems: list[str] = field(default_factory=list)  # what was refused, one line each


def _parse(raw: str, kind: type):
    """A query value as the setting's kind: true/false for bools, numbers, or the text."""
    text = raw.strip()
    if kind is bool:
        if text.lower() in ("true", "1", "yes", "on"):
            return True
        if text.lower() in ("false", "0", "no", "off"):
            return False
        return text  # the setting's check says what is allowed
    if kind in (int, float):
        try:
            number = float(text)
        except ValueError:
            return text
        return int(number) if kind is int and number.is_integer() else number
    return text


def _int_in(name: str, raw: str, lo: int, hi: int, problems: list[str]) -> int | None:
    try:
        value = float(raw)
    except ValueError:
        value = None
    if value is None or not value.is_integer() or not lo <= value <= hi:
        problems.append(f"{name}={raw!r}: must be a whole number from {lo} to {hi}")
        return None
    return int(value)


def settings_from_query(params: Mapping[str, str]) -> Link:
    """The state a URL's query parameters describe, and what in them was refused."""
    params = {k: v for k, v in params.items() if isinstance(v, str)}
    link = Link()
    problems = link.problems
    if "tab" in params:
        if params["tab"] in TABS:
            link.tab = params["tab"]
        else:
            problems.append(f"tab={params['tab']!r}: must be one of {', '.join(TABS)}")
    if "lesson" in params:
        if params["lesson"] in LESSONS:
            link.lesson = params["lesson"]
        else:
            problems.append(f"lesson={params['lesson']!r}: the lessons are {', '.join(LESSONS)}")
    model_keys = [k for k in params if k not in OWN]
    if not any(k in params for k in ("family", "data", "image_size", "colour", "batch_size", "seed")) and not model_keys:
        return link
    # a family or data set refused is named and left out like any other value; the rest is
    # checked against what the link gives without it
    family = params.get("family", "gan")
    try:
        family_of(family)
    except ConfigError as e:
        problems.append(f"family={family!r}: {e}")
        problems.extend(f"{key}: left out with the family it belongs to" for key in model_keys)
        family, model_keys = "gan", []
    data = params.get("data", "")
    if data not in BUILTIN_POINTS + BUILTIN_IMAGES:
        if "data" in params:
            problems.append(f"data={data!r}: a link can name a builtin data set only ({', '.join(BUILTIN_POINTS + BUILTIN_IMAGES)})")
        data = "ring8" if "points" in family_of(family).data_kinds else "digits"
    st = TrainSettings(family=family, data=data, image_size=default_side(data))
    if "image_size" in params:
        st.image_size = _int_in("image_size", params["image_size"], *IMAGE_SIZE_RANGE, problems) or st.image_size
    if "colour" in params:
        if params["colour"] in COLOURS:
            st.channels = COLOURS[params["colour"]]
        else:
            problems.append(f"colour={params['colour']!r}: must be one of {', '.join(COLOURS)}")
    st.batch_size = default_batch_size(family, _shape(st))  # the family's own for this data, as the Train tab shows
    if "batch_size" in params:
        st.batch_size = _int_in("batch_size", params["batch_size"], *BATCH_RANGE, problems) or st.batch_size
    if "seed" in params:
        seed = _int_in("seed", params["seed"], 0, 2**31 - 1, problems)
        st.seed = st.seed if seed is None else seed
    declared = settings_for(family)
    for key in model_keys:
        if key not in declared:
            problems.append(f"{key}: not a setting of {family}; its settings are {', '.join(declared)}")
            continue
        try:
            st.model[key] = declared[key].check(_parse(params[key], declared[key].kind))
        except ConfigError as e:
            problems.append(str(e))
    link.settings = st
    return link


def _shape(settings: TrainSettings) -> tuple[int, ...]:
    if settings.data in BUILTIN_POINTS:
        return (2,)
    colour = settings.data in BUILTIN_COLOUR and settings.channels != 1
    return (3 if colour else 1, settings.image_size, settings.image_size)


def query_from_settings(settings: TrainSettings, tab: str | None = None) -> str:
    """The query string that opens these settings: family and data always, the rest only where
    it differs from what the link would give without it. Data that is a user's file cannot go
    in a link (the reader's server does not have it): ConfigError."""
    if settings.data not in BUILTIN_POINTS + BUILTIN_IMAGES:
        raise ConfigError("a link can only name a builtin data set: your own file is not on the reader's server")
    base = settings_from_query({"family": settings.family, "data": settings.data}).settings
    query: dict[str, object] = {"family": settings.family, "data": settings.data}
    if settings.data not in BUILTIN_POINTS:
        if settings.image_size != base.image_size:
            query["image_size"] = settings.image_size
        if settings.channels == 1:
            query["colour"] = "grey"
    if settings.batch_size != default_batch_size(settings.family, _shape(settings)):
        query["batch_size"] = settings.batch_size
    if settings.seed != base.seed:
        query["seed"] = settings.seed
    try:
        defaults = default_config(settings.family, _shape(settings)).to_dict()
    except ConfigError:
        defaults = {}
    for key, value in settings.model.items():
        if key in settings_for(settings.family) and defaults.get(key) != value:
            query[key] = str(value).lower() if isinstance(value, bool) else value
    if tab:
        query["tab"] = tab
    return urlencode(query)
