"""Journeys in a real browser: Debian's chromium driven by Playwright (no browser download).

Screenshots go to $PLAYGROUND_SCREENSHOTS when set (that is how the README's pictures are made),
else to the test's temporary folder.
"""

import os
import re
import shutil
import time
from pathlib import Path

import pytest

playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError("chromium is missing: .ci/run installs it with apt-get")
    pytest.skip("chromium not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def shots(tmp_path):
    folder = Path(os.environ.get("PLAYGROUND_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def status_step(page) -> int:
    m = re.search(r"step\s+([\d,]+)", page.inner_text("#status"))
    return int(m.group(1).replace(",", "")) if m else -1


def wait_until(predicate, timeout=30.0, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_train_watch_stop_save(browser, app_url, shots):
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(app_url)
    page.wait_for_selector("#train")
    assert "No model yet" in page.inner_text("#status")

    page.click("#train")
    wait_until(lambda: status_step(page) > 20, what="training steps")
    src1 = page.get_attribute("#samples img", "src")
    wait_until(lambda: page.get_attribute("#samples img", "src") != src1, what="the samples to change")
    wait_until(lambda: page.locator("#curve1 canvas, #curve1 svg").count() > 0, what="the loss curves")
    # the 450 px plot shrunk into its column is shown smoothly (pixelated, its legend was garbled)
    sizes = page.evaluate("(() => { const i = document.querySelector('#samples img'); return [i.clientWidth, i.naturalWidth, getComputedStyle(i).imageRendering]; })()")
    assert sizes[0] < sizes[1] and sizes[2] == "auto", sizes
    step1 = status_step(page)
    wait_until(lambda: status_step(page) > step1, what="the step count to grow")
    time.sleep(1.0)
    page.screenshot(path=str(shots / "train-gan.png"), full_page=True)

    page.click("#stop")
    wait_until(lambda: "stopped" in page.inner_text("#status"), what="stopped")
    stopped_at = status_step(page)
    time.sleep(0.8)
    assert status_step(page) == stopped_at  # nothing trains after Stop
    page.locator("#samples button[aria-label=Fullscreen]").click()  # the projector: it fills the screen, pixelated
    wait_until(lambda: page.evaluate("document.querySelector('#samples img').clientWidth > 900"), what="the full-screen picture")
    style = page.evaluate("(() => { const s = getComputedStyle(document.querySelector('#samples img')); return [s.objectFit, s.imageRendering]; })()")
    assert style == ["contain", "pixelated"], style
    page.locator("#samples button").first.click()  # and back
    wait_until(lambda: page.evaluate("document.querySelector('#samples img').clientWidth < 500"), what="the picture back in its column")

    page.get_by_text("Save or load a checkpoint").click()
    page.click("#save")
    wait_until(lambda: "my-model" in page.inner_text("#download") and ".safetensors" in page.inner_text("#download"), what="the download link")
    assert "saved my-model.safetensors" in page.inner_text("#status")


def test_vae_on_digits_shows_an_image_grid(browser, app_url, shots):
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(app_url)
    page.wait_for_selector("#train")
    page.get_by_label("VAE").check()
    page.click("#data input")
    page.get_by_role("option", name=re.compile("^digits")).click()
    wait_until(lambda: page.locator("#beta").is_visible(), what="the VAE settings")
    page.click("#train")
    wait_until(lambda: status_step(page) > 100 and "KL" in page.inner_text("#status"), what="VAE training")
    time.sleep(1.5)
    page.screenshot(path=str(shots / "train-vae.png"), full_page=True)
    page.click("#stop")
    wait_until(lambda: "stopped" in page.inner_text("#status"), what="stopped")


def colour_share(page, selector: str) -> float:
    """The share of an <img>'s pixels, as the page draws them, whose red and blue differ (grey
    pictures have none; 0 while a new picture is still loading)."""
    return page.evaluate(
        """(sel) => { const img = document.querySelector(sel);
            if (!img || !img.complete || img.naturalWidth === 0) return 0;  // a new picture still loading: not yet
            const c = document.createElement('canvas');
            c.width = img.naturalWidth; c.height = img.naturalHeight; const g = c.getContext('2d'); g.drawImage(img, 0, 0);
            const d = g.getImageData(0, 0, c.width, c.height).data; let n = 0;
            for (let i = 0; i < d.length; i += 4) if (Math.abs(d[i] - d[i + 2]) > 24) n++;
            return n / (d.length / 4); }""",
        selector,
    )


def test_a_gan_trains_on_colour_emoji_and_the_page_shows_colour(browser, app_url, shots):
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(app_url)
    page.wait_for_selector("#train")
    page.click("#data input")
    page.get_by_role("option", name=re.compile("^emoji")).click()
    wait_until(lambda: page.locator("#colour").is_visible(), what="the colour control")
    assert page.locator("#colour input[value=auto]").is_checked()
    assert page.locator("input[type=radio][value=dcgan]").is_checked()  # the colour defaults
    wait_until(lambda: page.locator("#image-size input").input_value() == "32", what="the colour sets' 32 px")
    if not os.environ.get("PLAYGROUND_SCREENSHOTS"):  # 16 px trains four times as fast: colour sooner
        page.click("#image-size input")
        page.get_by_role("option", name="16", exact=True).click()
        wait_until(lambda: page.locator("#image-size input").input_value() == "16", what="16 px picked")
    page.click("#train")
    wait_until(lambda: status_step(page) > 5, timeout=60, what="GAN training on emoji")
    wait_until(lambda: page.locator("#samples img").count() > 0, what="the samples")
    # colour pixels on the page, once the averaged generator has left its grey start
    def coloured():
        return colour_share(page, "#samples img") > 0.05

    wait_until(coloured, timeout=150, what="colour pixels in the samples")
    if os.environ.get("PLAYGROUND_SCREENSHOTS"):  # the README's picture: emoji-like samples
        wait_until(lambda: status_step(page) >= 800, timeout=400, what="a longer run for the screenshot")
    time.sleep(1.0)
    page.screenshot(path=str(shots / "train-colour.png"), full_page=True)
    page.click("#stop")
    wait_until(lambda: "stopped" in page.inner_text("#status"), what="stopped")


def test_explore_slider_moves_the_image(browser, app_url, shipped_models, shots):
    page = browser.new_context(viewport={"width": 1400, "height": 1100}).new_page()
    page.goto(app_url)
    page.get_by_role("tab", name="Explore").click()
    page.click("#explore-model input")
    page.get_by_role("option", name=re.compile("^vae2-test")).click()
    wait_until(lambda: "VAE" in page.inner_text("#explore-info"), what="the model to load")
    wait_until(lambda: page.locator("#explore-image img").count() > 0, what="the decoded image")
    before = page.get_attribute("#explore-image img", "src")
    page.locator("#z0 input[type=range]").fill("2.5")
    wait_until(lambda: page.get_attribute("#explore-image img", "src") != before, what="the image to follow the slider")
    after = page.get_attribute("#explore-image img", "src")
    page.locator("#z0 input[type=range]").fill("-2.5")
    wait_until(lambda: page.get_attribute("#explore-image img", "src") not in (before, after), what="a second move")
    wait_until(lambda: page.locator("#explore-map img").count() > 0, what="the latent map")
    page.screenshot(path=str(shots / "explore.png"), full_page=True)


def test_train_a_conditional_model_switch_its_class_breed_and_export(browser, app_url, shots):
    """Issue 14's journey: a cVAE on the digits, each digit drawn from one latent in Explore,
    one generation bred, the picture exported."""
    page = browser.new_context(viewport={"width": 1400, "height": 1100}).new_page()
    page.goto(app_url)
    page.wait_for_selector("#train")
    page.get_by_label("VAE").check()
    page.click("#data input")
    page.get_by_role("option", name=re.compile("^digits")).click()
    # the family's and the data's settings arrive first (they set the checkbox too)
    wait_until(lambda: page.locator("#beta").is_visible() and page.locator("#image-size").is_visible(), what="the VAE's settings for digits")
    box = page.locator("#conditional input")

    def ticked() -> bool:
        if not box.is_checked():
            box.click()
            time.sleep(0.3)
        return box.is_checked()

    wait_until(ticked, what="the conditional checkbox ticked")
    time.sleep(0.5)
    wait_until(ticked, what="the conditional checkbox still ticked")
    page.click("#train")
    wait_until(lambda: status_step(page) > 600, timeout=120, what="conditional VAE training")
    page.click("#stop")
    wait_until(lambda: "stopped" in page.inner_text("#status"), what="stopped")

    page.get_by_role("tab", name="Explore").click()
    page.click("#explore-model input")
    page.get_by_role("option", name="The model in the Train tab").click()
    try:
        wait_until(lambda: "Conditioned on 10 classes" in page.inner_text("#explore-info"), timeout=90, what="the conditional model in Explore")
    except AssertionError:
        page.screenshot(path=str(shots / "explore-conditional-failed.png"), full_page=True)
        raise AssertionError(f"Explore shows: {page.inner_text('#explore-info')!r}") from None
    wait_until(lambda: page.locator("#explore-image img").count() > 0, what="the decoded image")
    seen = {page.get_attribute("#explore-image img", "src")}
    for digit in ("3", "8"):
        page.click("#explore-class input")
        page.get_by_role("option", name=digit, exact=True).click()
        wait_until(lambda: page.get_attribute("#explore-image img", "src") not in seen, what=f"the picture drawn as {digit}")
        seen.add(page.get_attribute("#explore-image img", "src"))
    page.screenshot(path=str(shots / "explore-conditional.png"), full_page=True)

    page.get_by_role("tab", name="Breed").click()
    page.click("#breed-start")
    wait_until(lambda: page.locator("#breed-gallery img").count() == 8, what="the first generation")
    first = page.get_attribute("#breed-gallery img >> nth=0", "src")
    page.locator("#breed-gallery img").nth(1).click()
    page.locator("#breed-gallery img").nth(4).click()
    wait_until(lambda: "2, 5" in page.locator("#breed-parents textarea, #breed-parents input").first.input_value(), what="two parents picked")
    page.click("#breed-run")
    wait_until(lambda: "Generation 1 (lineage: 2+5)" in page.inner_text("#breed-info"), what="the second generation")
    assert page.get_attribute("#breed-gallery img >> nth=0", "src") != first

    page.click("#explore-export")
    wait_until(lambda: ".png" in page.inner_text("#explore-file"), what="the exported PNG")


def test_draw_points_on_the_plane_and_train_on_them(browser, app_url, shots):
    """GAN Lab's "draw a distribution": three clicks, three blobs, and a GAN learns them."""
    page = browser.new_context(viewport={"width": 1400, "height": 1100}).new_page()
    page.goto(app_url)
    page.wait_for_selector("#train")
    page.click("#data input")
    page.get_by_role("option", name=re.compile("^your own points")).click()
    wait_until(lambda: page.locator("#draw-plane img").is_visible(), what="the drawing plane")
    img = page.locator("#draw-plane img")
    box = img.bounding_box()
    for k, (fx, fy) in enumerate(((0.3, 0.3), (0.7, 0.35), (0.5, 0.75)), start=1):
        img.click(position={"x": box["width"] * fx, "y": box["height"] * fy})
        wait_until(lambda k=k: f"{100 * k} points in {k} blobs" in page.inner_text("#draw-info"), what="the points to appear")
    page.click("#draw-undo")
    wait_until(lambda: "200 points" in page.inner_text("#draw-info"), what="undo")
    page.click("#train")
    wait_until(lambda: status_step(page) > 50, timeout=60, what="training on the drawing")
    time.sleep(1.0)
    page.screenshot(path=str(shots / "train-drawn.png"), full_page=True)
    page.click("#stop")
    wait_until(lambda: "stopped" in page.inner_text("#status"), what="stopped")
    page.get_by_role("tab", name="Explore").click()  # the model is of the drawn points
    page.click("#explore-model input")
    page.get_by_role("option", name="The model in the Train tab").click()
    wait_until(lambda: "drawn-" in page.inner_text("#explore-info"), timeout=60, what="the model of the drawing in Explore")


# -- the Inspect tab: open a lesson, watch the views update ------------------------------------


def inspected_step(page) -> int:
    m = re.search(r"step\s+([\d,]+)", page.inner_text("#inspect-status"))
    return int(m.group(1).replace(",", "")) if m else -1


def test_a_lesson_and_its_live_views(browser, app_url, shots):
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(app_url)
    page.get_by_role("tab", name="Inspect").click()
    wait_until(lambda: "No model to inspect yet" in page.inner_text("#inspect-status"), what="the empty Inspect tab")

    page.click("#lesson-mode-collapse")
    wait_until(lambda: "Training" in page.inner_text("#inspect-lesson"), what="the lesson to start")
    assert "Mode collapse" in page.inner_text("#inspect-lesson")
    wait_until(lambda: "grid25" in page.inner_text("#inspect-status"), what="the lesson's model in the views")
    wait_until(lambda: page.locator("#inspect-plane img").count() > 0, what="the discriminator's view")
    # the timer keeps the views live: the picture and the step count change on their own
    src = page.get_attribute("#inspect-plane img", "src")
    step = inspected_step(page)
    wait_until(lambda: page.get_attribute("#inspect-plane img", "src") != src, what="the plane to update")
    wait_until(lambda: inspected_step(page) > step, what="the step count to grow")
    assert page.locator("#inspect-hist img").count() == 1
    assert "of 25 modes" in page.inner_text("#inspect-modes")
    # the Learn panel: the minimax objective typeset by KaTeX, with the running procedure marked
    assert page.locator("#inspect-learn .katex").count() >= 3
    assert "running" in page.inner_text("#inspect-learn")
    wait_until(lambda: page.locator("#inspect-scores canvas, #inspect-scores svg").count() > 0, what="the D score curves")
    if os.environ.get("PLAYGROUND_SCREENSHOTS"):  # the README's picture: let the collapse show
        wait_until(lambda: inspected_step(page) >= 2500, timeout=120, what="a longer run for the screenshot")
    time.sleep(2.0)  # a few more updates, so the picture shows a run under way
    page.screenshot(path=str(shots / "inspect.png"), full_page=True)

    page.click("#inspect-stop")
    # (in screenshot mode the run may have reached the lesson's 60 s by now: "Lesson over")
    wait_until(lambda: any(w in page.inner_text("#inspect-lesson") for w in ("Stopped", "Lesson over")), what="the lesson to stop")
    # the Train tab now holds the lesson's model and shows its settings
    page.get_by_role("tab", name="Train").click()
    assert page.locator("#family input[value=gan]").is_checked()
    assert page.locator("input[type=radio][value=minimax]").is_checked()  # the lesson's generator loss


def test_a_link_opens_its_settings_and_tab_and_the_tab_makes_links(browser, app_url):
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(app_url.rstrip("/") + "/?family=vae&data=digits&latent_dim=3&beta=4&tab=explore")
    wait_until(lambda: page.locator("#explore-model").is_visible(), what="the Explore tab opened by the link")
    assert not page.locator("#train").is_visible()
    page.get_by_role("tab", name="Train").click()
    assert page.locator("#family input[value=vae]").is_checked()
    assert page.locator("#latent_dim input[type=number]").input_value() == "3"
    assert float(page.locator("#beta input[type=number]").input_value()) == 4
    page.get_by_text("Share these settings as a link").click()
    page.click("#make-link")
    wait_until(lambda: page.locator("#link textarea, #link input").first.input_value().startswith("http"), what="the link")
    link = page.locator("#link textarea, #link input").first.input_value()
    assert "family=vae" in link and "latent_dim=3" in link and "beta=4" in link

    lesson = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    lesson.goto(app_url.rstrip("/") + "/?lesson=mode-collapse")
    wait_until(lambda: lesson.locator("#inspect-lesson").is_visible() and "press the Mode collapse button" in lesson.inner_text("#inspect-lesson"), what="the lesson's Inspect tab")

    bad = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    bad.goto(app_url.rstrip("/") + "/?family=vae&beta=99&data=/etc/passwd")
    wait_until(lambda: "not understood" in bad.inner_text("body"), what="the warning about the link")
    assert "beta must be a number from 0.0 to 20.0" in bad.inner_text("body")  # each refused value is named
    wait_until(lambda: bad.locator("#family input[value=vae]").is_checked(), what="the link's family, its refused data and beta left out")
    assert bad.locator("#beta input[type=number]").input_value() != "99"


# -- Explore's pictures drawn in the page (issue 15) -------------------------------------------


@pytest.fixture(scope="module")
def page_models(app_url, shipped_models):
    """Beside the shipped test models: a conditional DCGAN in colour (a conv net, class weights
    in) and a MADE (its pictures cannot be drawn in the page: the server draws them)."""
    import ui.common
    from playground.checkpoint import save_checkpoint
    from playground.data import load_data
    from playground.trainer import TrainConfig, make_trainer

    root = ui.common.CHECKPOINT_ROOT
    emoji = load_data("emoji", image_size=16, n=256)
    cgan = make_trainer(
        "gan",
        emoji,
        {"channels": 8, "conditional": True},
        TrainConfig(batch_size=32),
        data_args={"spec": "emoji", "image_size": 16},
    )
    made = make_trainer(
        "autoregressive",
        load_data("digits", image_size=16, n=256),
        {},
        TrainConfig(batch_size=32),
        data_args={"spec": "digits", "image_size": 16},
    )
    cvae = make_trainer(
        "vae",
        load_data("digits", image_size=16, n=256),
        {"latent_dim": 2, "conditional": True},
        TrainConfig(batch_size=32),
        data_args={"spec": "digits", "image_size": 16},
    )
    for t in (cgan, made, cvae):
        for _ in range(3):
            t.step()
    return {
        **shipped_models,
        "cgan": str(save_checkpoint(root / "cgan-colour-test.safetensors", cgan, optimizer=False)),
        "made": str(save_checkpoint(root / "made-test.safetensors", made, optimizer=False)),
        "cvae": str(save_checkpoint(root / "cvae2-test.safetensors", cvae, optimizer=False)),
    }


def decode_index(url: str) -> int:
    """The index the page calls the server's /decode endpoint by."""
    import json
    import urllib.request

    with urllib.request.urlopen(url + "config") as r:
        deps = json.load(r)["dependencies"]
    return next(d["id"] for d in deps if d.get("api_name") == "decode")


def explore_page(browser, url: str, model: str, blocked: list | None = None, init_script: str | None = None):
    """A page on Explore showing `model`; with `blocked`, every call of the server's /decode is
    refused (and counted there); `init_script` runs before the page's own."""
    page = browser.new_context(viewport={"width": 1400, "height": 1100}).new_page()
    if init_script:
        page.add_init_script(init_script)
    if blocked is not None:
        index = decode_index(url)

        def refuse_decode(route):
            if f'"fn_index":{index},' in (route.request.post_data or "").replace(" ", ""):
                blocked.append(route.request.post_data)
                return route.abort()
            return route.continue_()

        page.route("**/gradio_api/run/predict", refuse_decode)
    page.goto(url)
    page.get_by_role("tab", name="Explore").click()
    page.click("#explore-model input")
    page.get_by_role("option", name=re.compile("^" + re.escape(Path(model).stem))).click()
    wait_until(lambda: Path(model).stem in page.inner_text("#explore-info"), what="the model to load")
    return page


def path_of(page) -> str:
    return page.get_attribute("#explore-path .pg-path", "data-path") or ""


def slide(page, elem_id: str, value: float) -> None:
    page.locator(f"#{elem_id} input[type=range]").fill(str(value))


def drawn(page) -> int:
    return page.evaluate("window.pgExplore.state.drawn")


def test_explore_draws_in_the_page_with_the_servers_decode_blocked(browser, app_url, shipped_models, shots):
    """The slider's picture changes with the server's /decode endpoint refused: the page draws
    it (and never asked the server); unticking "Draw in this browser" goes back to the server."""
    blocked = []
    page = explore_page(browser, app_url, shipped_models["vae"], blocked)
    wait_until(lambda: path_of(page) == "browser", timeout=90, what="the decoder to run in the page")
    seen = {page.get_attribute("#explore-image img", "src")}
    for i, v in enumerate((2.5, -1.0, 0.7)):
        n = drawn(page)
        slide(page, "z0" if i % 2 == 0 else "z1", v)
        wait_until(
            lambda n=n: drawn(page) > n and page.get_attribute("#explore-image img", "src") not in seen,
            what=f"move {i + 1} drawn in the page",
        )
        seen.add(page.get_attribute("#explore-image img", "src"))
    assert "drawn in this browser" in page.inner_text("#explore-path") and blocked == []
    page.screenshot(path=str(shots / "explore-in-browser.png"), full_page=True)
    page.uncheck("#explore-in-browser input")
    wait_until(lambda: path_of(page) == "server", what="the server's path once unticked")
    slide(page, "z0", -2.0)
    wait_until(lambda: len(blocked) > 0, what="the slider to ask the server")
    assert "turned off" in page.inner_text("#explore-path")


def test_the_page_draws_the_pixels_pytorch_draws(browser, app_url, page_models):
    """Parity in the real browser, for the MLP VAE and the conditional colour DCGAN: the latent
    the page computed from its sliders is Explorer.z_from's, its class weights are
    class_weights' (a class picked, and some of another), and the picture onnxruntime-web
    decoded is PyTorch's (1e-4 before rounding) and the server's (one level after)."""
    import numpy as np
    import torch

    from playground import sampling
    from playground.explore import Explorer, card_from_checkpoint
    from playground.models._common import class_weights

    cases = (("vae", [("z0", 1.3), ("z1", -0.6)]), ("cgan", [("z0", 0.8), ("pc0", 2.5), ("z5", -1.4), ("class-more1", 0.5)]))
    for key, moves in cases:
        page = explore_page(browser, app_url, page_models[key])
        wait_until(lambda page=page: path_of(page) == "browser", timeout=90, what=f"{key}: the decoder to run in the page")
        ex = Explorer(card_from_checkpoint(page_models[key]))
        if not ex.card.encodes:  # a GAN opens at seed 0's latent
            ex.jump(sampling.latents(ex.card.model, 1, 0)[0], 0)
        values, alphas, mix = ex.values_from(ex.base), [0.0] * len(ex.directions), [0.0] * len(ex.classes)
        if key == "cgan":
            page.click("#explore-class input")
            page.get_by_role("option", name=ex.classes[2], exact=True).click()
            wait_until(lambda page=page: page.evaluate("(window.pgExplore.state.last || {w: [1]}).w[2]") == 1, what="the class drawn")
        for elem_id, value in moves:
            n = drawn(page)
            slide(page, elem_id, value)
            wait_until(lambda page=page, n=n: drawn(page) > n, what=f"{key}: {elem_id} drawn")
            if elem_id.startswith("class-more"):
                mix[int(elem_id.removeprefix("class-more"))] = value
            elif elem_id.startswith("pc"):
                alphas[int(elem_id[2:])] = value
            else:
                values[int(elem_id[1:])] = value
        time.sleep(1.0)  # what letting go of a slider brings has come back
        last = page.evaluate("window.pgExplore.state.last")
        want_z = ex.z_from(values, alphas)
        np.testing.assert_allclose(np.asarray(last["z"], dtype=np.float32), want_z.numpy(), atol=1e-6)
        w = None
        if ex.classes:
            ex.set_class(2)
            ex.set_class_mix(mix)
            w = class_weights(ex.card.model.config, 1)
            np.testing.assert_allclose(np.asarray(last["w"], dtype=np.float32), w[0].numpy(), atol=1e-7)
            assert float(w[0, 2]) == 1.0 and float(w[0, 1]) == 0.5
        else:
            assert last["w"] is None
        net = ex.card.model.export_decoder().eval()
        with torch.no_grad():
            want = (net(want_z.view(1, -1)) if w is None else net(want_z.view(1, -1), w))[0].numpy()
        got = np.asarray(last["x"], dtype=np.float32).reshape(want.shape)
        np.testing.assert_allclose(got, want, atol=1e-4)
        server = ex.draw(want_z)
        pic = np.asarray(last["rgba"], dtype=np.uint8).reshape(last["height"], last["width"], 4)[..., :3]
        assert np.abs(pic.astype(int) - server[:: ex.scale, :: ex.scale].astype(int)).max() <= 1
        page.context.close()


def grid_drawn(page, elem_id: str, before: int):
    """The picture in #elem_id, once the page has drawn one more grid than `before` and shows it."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    wait_until(lambda: page.evaluate("window.pgExplore.state.grids") > before and (page.get_attribute(f"#{elem_id} img", "src") or "").startswith("data:"),
               what=f"#{elem_id} drawn in the page")  # fmt: skip
    src = page.get_attribute(f"#{elem_id} img", "src")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"))


def near(page_pic, server_pic) -> bool:
    """The same picture, each pixel within one level (float rounding)."""
    return page_pic.shape == server_pic.shape and int(abs(page_pic.astype(int) - server_pic.astype(int)).max()) <= 1


def test_a_seed_and_every_grid_are_drawn_in_the_page_as_the_server_draws_them(browser, app_url, page_models, shots):
    """With the page drawing: a 2-D VAE's latent map as it opens, a new seed's picture, an
    interpolation, a traversal, every class of a conditional DCGAN and a conditional VAE's
    latent map for a class picked are drawn in
    the page from the server's numbers (Explorer.grid_plan), pixel for pixel the server's
    pictures (one level), and /decode is never called. A grid the page cannot draw after all
    is asked of the server again; unticking the box sends grids to the server."""
    import numpy as np
    import torch

    from playground import sampling
    from playground.explore import Explorer, card_from_checkpoint, latent_map_latents, traversal_latents

    blocked = []
    page = explore_page(browser, app_url, page_models["vae"], blocked)
    wait_until(lambda: path_of(page) == "browser", timeout=90, what="the decoder to run in the page")
    ex = Explorer(card_from_checkpoint(page_models["vae"]))
    assert near(grid_drawn(page, "explore-map", 0), ex.grid(sampling.decode(ex.card.model, latent_map_latents(2, steps=15)), 15))  # on opening
    n = drawn(page)
    page.locator("#explore-map img").click(position={"x": 3, "y": 3})  # the top-left cell: (-3, 3)
    wait_until(lambda: drawn(page) > n, what="the map click's point drawn in the page")
    assert page.evaluate("window.pgExplore.state.last.z") == [-3.0, 3.0]
    n = drawn(page)
    page.locator("#explore-seed input").fill("709")  # z1 = -3.13: past the slider's ±3, which widens to hold it
    page.locator("#explore-seed input").press("Enter")
    wait_until(lambda: drawn(page) > n and (page.get_attribute("#explore-image img", "src") or "").startswith("data:"), what="the seed drawn in the page")
    seed = int(page.locator("#explore-seed input").input_value())
    values = ex.jump(sampling.latents(ex.card.model, 1, seed)[0], seed)
    last = page.evaluate("window.pgExplore.state.last")
    pic = np.asarray(last["rgba"], dtype=np.uint8).reshape(last["height"], last["width"], 4)[..., :3]
    assert near(pic, ex.draw(ex.z_from(values))[:: ex.scale, :: ex.scale])

    page.get_by_role("tab", name="Interpolate").click()
    page.click("#interp-run")
    z = sampling.interpolate(sampling.latents(ex.card.model, 1, 1)[0], sampling.latents(ex.card.model, 1, 2)[0], 10, "spherical")
    assert near(grid_drawn(page, "interp-image", 1), ex.grid(sampling.decode(ex.card.model, z), 10))

    page.get_by_role("tab", name="Traversal").click()
    page.click("#trav-run")
    z = traversal_latents(ex.z_from(values), torch.eye(2)[ex.sliders[:6]], steps=9, span=3.0, absolute=True)
    assert near(grid_drawn(page, "trav-image", 2), ex.grid(sampling.decode(ex.card.model, z), 9))
    page.screenshot(path=str(shots / "explore-traversal-in-browser.png"), full_page=True)
    assert blocked == []

    # the decoder breaks: the page asks the server for the grid again, and says so
    page.evaluate("""() => { const s = window.pgExplore.state, url = [...s.ready][0];
                             s.sessions.set(url, Promise.reject(new Error("broken on purpose"))); }""")  # fmt: skip
    page.get_by_role("tab", name="Interpolate").click()
    page.click("#interp-run")
    wait_until(lambda: "broken on purpose" in page.inner_text("#explore-path"), what="the page to say it cannot draw")
    wait_until(lambda: not (page.get_attribute("#interp-image img", "src") or "data:").startswith("data:"), what="the server's interpolation")
    page.context.close()

    page = explore_page(browser, app_url, page_models["cgan"])
    wait_until(lambda: path_of(page) == "browser", timeout=90, what="the DCGAN's decoder in the page")
    ex = Explorer(card_from_checkpoint(page_models["cgan"]))
    values = ex.jump(sampling.latents(ex.card.model, 1, 0)[0], 0)
    page.get_by_role("tab", name="Every class").click()
    page.click("#classes-run")
    k = len(ex.classes)
    want = ex.grid(sampling.decode(ex.card.model, ex.z_from(values).repeat(k, 1), torch.arange(k)), min(k, 10), width=800)
    assert near(grid_drawn(page, "classes-image", 0), want)
    page.uncheck("#explore-in-browser input")
    wait_until(lambda: path_of(page) == "server", what="the server's path once unticked")
    page.click("#classes-run")
    wait_until(lambda: not page.get_attribute("#classes-image img", "src").startswith("data:"), what="every class drawn by the server")
    page.context.close()

    page = explore_page(browser, app_url, page_models["cvae"])
    wait_until(lambda: path_of(page) == "browser", timeout=90, what="the cVAE's decoder in the page")
    ex = Explorer(card_from_checkpoint(page_models["cvae"]))
    grid_drawn(page, "explore-map", 0)  # on opening, as class 0
    page.click("#explore-class input")
    page.get_by_role("option", name=ex.classes[7], exact=True).click()
    ex.set_class(7)
    want = ex.grid(sampling.decode(ex.card.model, latent_map_latents(2, steps=15)), 15)
    assert near(grid_drawn(page, "explore-map", 1), want)
    page.context.close()


def test_an_encoded_picture_is_drawn_in_the_page(browser, app_url, shipped_models, digits, tmp_path):
    """A picture put into the latent space moves the sliders to its code, and the page draws
    that point: the listener's page check (PAGE_JS) passes the uploaded file through unchanged."""
    from PIL import Image

    blocked = []
    page = explore_page(browser, app_url, shipped_models["vae"], blocked)
    wait_until(lambda: path_of(page) == "browser", timeout=90, what="the decoder to run in the page")
    img = tmp_path / "three.png"
    Image.fromarray((digits.x[3, 0].numpy() * 255).astype("uint8")).save(img)
    n = drawn(page)
    page.locator("#explore-encode input[type=file]").set_input_files(str(img))
    wait_until(lambda: "Encoded" in page.inner_text("#explore-encode-info") and drawn(page) > n, what="the encoded picture drawn in the page")
    z = page.evaluate("window.pgExplore.state.last.z")
    assert z != [0.0, 0.0] and abs(float(page.locator("#z0 input[type=number]").input_value()) - z[0]) < 0.01
    assert blocked == []


def test_a_model_the_page_cannot_draw_falls_back_to_the_server(browser, app_url, page_models):
    """MADE samples pixel by pixel: its decoder is not exported, the page says the server draws
    and why, and a slider still changes the picture (through /decode)."""
    page = explore_page(browser, app_url, page_models["made"])
    wait_until(lambda: path_of(page) == "server", what="the server's path")
    assert "loop of many network passes" in page.inner_text("#explore-path")
    wait_until(lambda: page.locator("#explore-image img").count() > 0, what="the picture")
    before = page.get_attribute("#explore-image img", "src")
    slide(page, "z0", 2.9)
    wait_until(lambda: page.get_attribute("#explore-image img", "src") != before, what="the server's new picture")
    assert not page.get_attribute("#explore-image img", "src").startswith("data:") and drawn(page) == 0


def test_a_browser_without_webassembly_is_drawn_for_by_the_server(browser, app_url, shipped_models):
    """The same VAE in a page without WebAssembly (taken away before the app's scripts run): the
    page says the server draws, and why, and the slider still moves the picture."""
    page = explore_page(browser, app_url, shipped_models["vae"], init_script="delete window.WebAssembly;")
    assert page.evaluate("typeof WebAssembly") == "undefined"
    wait_until(lambda: "no WebAssembly" in page.inner_text("#explore-path"), timeout=60, what="the server's path, with why")
    wait_until(lambda: page.locator("#explore-image img").count() > 0, what="the picture")
    before = page.get_attribute("#explore-image img", "src")
    slide(page, "z0", -2.2)
    wait_until(lambda: page.get_attribute("#explore-image img", "src") != before, what="the server's new picture")
    assert path_of(page) == "server" and drawn(page) == 0


def test_a_pasted_name_reaches_the_teachers_wall(browser):
    """A name put in the box at once (pasted, autofilled: Playwright's fill) is the one the
    teacher's wall shows; the box's input event fired only for keys typed."""
    import socket

    from playground.classroom import Classroom
    from ui import PAGE, build_demo

    room = Classroom()
    demo = build_demo(max_trainings=1, classroom=room)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.queue(default_concurrency_limit=None).launch(server_port=port, prevent_thread_lock=True, quiet=True, **PAGE)
    try:
        page = browser.new_context().new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("#student-name textarea, #student-name input")
        page.fill("#student-name textarea, #student-name input", "Fay Pasted")
        wait_until(lambda: [s.name for s in room.sessions()] == ["Fay Pasted"], what="the name to reach the class")
        page.context.close()
    finally:
        demo.close()
