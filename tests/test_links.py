"""Links that open the app in a state: parsing, refusals, and the round trip."""

from urllib.parse import parse_qsl

import pytest

from playground.links import query_from_settings, settings_from_query
from playground.models import ConfigError, default_config
from playground.session import TrainSettings


def parse(query: str):
    return settings_from_query(dict(parse_qsl(query)))


def test_a_link_sets_family_data_settings_tab_and_lesson():
    link = parse("family=vae&data=digits&latent_dim=2&beta=4&lr=0.002&kl_warmup=100&tab=explore&seed=3&batch_size=64")
    assert link.problems == [] and link.tab == "explore"
    st = link.settings
    assert (st.family, st.data, st.seed, st.batch_size, st.image_size) == ("vae", "digits", 3, 64, 28)
    assert st.model == {"latent_dim": 2, "beta": 4.0, "lr": 0.002, "kl_warmup": 100}
    assert isinstance(st.model["latent_dim"], int) and isinstance(st.model["beta"], float)
    assert parse("lesson=mode-collapse").lesson == "mode-collapse" and parse("lesson=mode-collapse").settings is None
    colour = parse("family=gan&data=emoji&colour=grey&spectral_norm=true&augment=diffaugment").settings
    assert colour.channels == 1 and colour.image_size == 32 and colour.model == {"spectral_norm": True, "augment": "diffaugment"}
    assert parse("").settings is None and parse("").problems == []


def test_a_link_trains_with_the_familys_own_batch_for_the_data():
    """A colour GAN trains at batch 64 by default (grey pictures at 128): a link that names no
    batch gets the one the Train tab would show, and a link made from those settings names none."""
    colour, grey = parse("family=gan&data=emoji").settings, parse("family=gan&data=emoji&colour=grey").settings
    assert (colour.batch_size, grey.batch_size) == (64, 128)
    assert "batch_size" not in query_from_settings(colour) and "batch_size" not in query_from_settings(grey)
    colour.batch_size = 128
    assert parse(query_from_settings(colour)).settings.batch_size == 128


@pytest.mark.parametrize(
    "query, says",
    [
        ("family=bogus", "unknown model family"),
        ("data=/etc/passwd", "builtin data set only"),
        ("family=vae&beta=99", "beta must be a number from 0.0 to 20.0"),
        ("family=vae&beta=lots", "beta must be"),
        ("family=gan&beta=1", "not a setting of gan"),
        ("family=gan&loss=maximal", "loss must be one of"),
        ("family=gan&spectral_norm=maybe", "true or false"),
        ("image_size=5&data=digits", "image_size='5': must be a whole number from 8 to 64"),
        ("batch_size=2.5", "batch_size"),
        ("tab=settings", "tab='settings'"),
        ("lesson=nope", "the lessons are"),
        ("data=digits&colour=sepia", "colour='sepia'"),
    ],
)
def test_a_bad_link_is_refused_with_what_is_allowed(query, says):
    link = parse(query)
    assert any(says in p for p in link.problems), link.problems
    bad_keys = {k for k, _ in parse_qsl(query)} - {"family", "data", "tab", "lesson", "image_size", "batch_size", "seed", "colour"}
    if link.settings is not None:  # what was refused is not applied
        assert not (bad_keys & set(link.settings.model))


def test_what_a_link_gets_wrong_is_named_and_the_rest_applies():
    link = parse("family=vae&beta=99&data=/etc/passwd&latent_dim=3")
    assert [p.split(":")[0] for p in link.problems] == ["data='/etc/passwd'", "beta must be a number from 0.0 to 20.0; got 99.0"]
    st = link.settings
    assert (st.family, st.data, st.model) == ("vae", "ring8", {"latent_dim": 3})  # the family's own default data
    link = parse("family=bogus&beta=4&seed=5")
    assert link.problems[0].startswith("family='bogus'") and link.problems[1] == "beta: left out with the family it belongs to"
    assert (link.settings.family, link.settings.data, link.settings.seed, link.settings.model) == ("gan", "ring8", 5, {})


@pytest.mark.parametrize(
    "st",
    [
        TrainSettings(family="gan", data="ring8", model={"lr": 0.001, "pack": 2, "loss": "minimax"}),
        TrainSettings(family="vae", data="emoji", image_size=64, channels=1, seed=7, model={"latent_dim": 8, "likelihood": "logistic"}),
        TrainSettings(family="diffusion", data="digits", batch_size=256, model={"timesteps": 200, "eta": 0.0}),
        TrainSettings(family="flow", data="moons"),
    ],
)
def test_links_round_trip(st):
    query = query_from_settings(st, tab="inspect")
    link = parse(query)
    assert link.problems == [] and link.tab == "inspect"
    back = link.settings
    assert (back.family, back.data, back.seed, back.batch_size, back.channels) == (st.family, st.data, st.seed, st.batch_size, st.channels)
    if st.data not in ("ring8", "moons"):
        assert back.image_size == st.image_size
    shape = (2,) if st.data in ("ring8", "moons") else ((1 if st.channels == 1 or st.data == "digits" else 3), st.image_size, st.image_size)
    assert default_config(st.family, shape, **back.model).to_dict() == default_config(st.family, shape, **st.model).to_dict()


def test_a_link_is_short_and_refuses_a_users_file():
    assert query_from_settings(TrainSettings(family="gan", data="ring8", model={"lr": 5e-4, "hidden": 256})) == "family=gan&data=ring8"
    with pytest.raises(ConfigError, match="builtin data set"):
        query_from_settings(TrainSettings(family="vae", data="/tmp/my-photos.zip"))
