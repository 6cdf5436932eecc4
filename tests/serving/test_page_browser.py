"""The served page in a real browser: headless Debian chromium driven by Playwright.

Tags "Dhaval loves baby yoda" and sees a highlighted entity, translates "how are you?" into Devanagari,
generates a piece and gets an <audio> element whose WAV the browser loads (duration > 0). Skipped only
where /usr/bin/chromium is absent (CI installs it: .ci/run).
"""

from __future__ import annotations

import base64
import os
import re

import pytest
from fixtures.serving import serve

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 20_000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no {CHROMIUM} (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with serve(["tagger", "translator", "events", "classifier"]) as server, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
            ],
        )  # fmt: skip
        try:
            context.set_default_timeout(TIMEOUT_MS)
            tab = context.new_page()
            errors: list[str] = []
            tab.on("pageerror", lambda error: errors.append(str(error)))
            tab.goto(server.url + "/")
            tab.wait_for_selector("body[data-ready=true]")
            yield tab
            assert not errors, f"JavaScript errors on the page: {errors}"
        finally:
            context.close()


def test_tagging_highlights_the_entity(page) -> None:
    card = page.locator("[data-kind=tag]")
    card.locator("textarea").fill("Dhaval loves baby yoda")
    card.locator("button.run").click()
    entity = card.locator("mark.entity").first
    entity.wait_for()
    assert entity.get_attribute("data-type") == "PER"
    assert entity.inner_text().startswith("Dhaval")
    words = card.locator(".sentence").inner_text().replace("PER", "").split()
    assert words == ["Dhaval", "loves", "baby", "yoda"]


def test_translation_shows_devanagari_and_the_nbest_list(page) -> None:
    card = page.locator("[data-kind=translate]")
    card.locator("input[type=text]").fill("how are you?")
    card.locator("button.run").click()
    best = card.locator(".hypothesis").first
    best.wait_for()
    assert re.search("[\u0900-\u097f]", best.inner_text())
    assert card.locator(".hypothesis").count() >= 1


def test_rating_shows_stars_and_a_bar_per_class(page) -> None:
    card = page.locator("[data-kind=classify]")
    card.locator("button.run").click()
    card.locator(".stars").wait_for()
    assert 1 <= int(card.locator(".stars").get_attribute("data-stars")) <= 5
    assert card.locator(".bar").count() == 2


def test_generating_gives_a_playable_audio_element(page) -> None:
    card = page.locator("[data-model=events]")
    card.locator("input[name=steps]").fill("96")
    card.locator("button.run").click()
    audio = card.locator("audio")
    audio.wait_for()
    duration = audio.evaluate(
        """(a) => new Promise((resolve, reject) => {
             if (a.readyState >= 1) return resolve(a.duration);
             a.addEventListener("loadedmetadata", () => resolve(a.duration));
             a.addEventListener("error", () => reject(new Error("audio error " + (a.error && a.error.code))));
             setTimeout(() => reject(new Error("no loadedmetadata in 15 s")), 15000);
           })"""
    )
    assert duration > 0
    source = audio.get_attribute("src")
    assert source.startswith("data:audio/wav;base64,")
    wav = base64.b64decode(source.split(",", 1)[1])
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
    assert card.locator("img.roll").evaluate("(img) => img.complete && img.naturalWidth > 0")
    assert card.locator("a.download").get_attribute("href").startswith("data:audio/midi;base64,")
