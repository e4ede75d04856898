"""The search page in a real headless Chromium (Debian's chromium + chromedriver, driven by Selenium).

The page is opened from a real server, a SciFact query is typed, and the hits on the page are compared with
the API's answer to the same request: the same ids in the same order, the highlighted terms equal to the
API's matched terms that occur in the text, the other matched terms listed beside it, and the score
decomposition table summing to the score. A screenshot is saved to ``test-artifacts/serving/search_page.png``
(ignored by git) and to the test's temporary folder.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from .conftest import ROOT, SCIFACT_QUERIES

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = ROOT / "test-artifacts" / "serving"

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("selenium") is None,
                       reason="needs selenium: pip install -e '.[dev]'"),
    pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
                       reason="needs Debian's chromium and chromium-driver: apt-get install -y chromium "
                              "chromium-driver (.ci/run installs them)"),
]
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1800")


@pytest.fixture()
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def test_search_page_shows_hits_with_the_matched_terms_highlighted(search_server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    query = SCIFACT_QUERIES[1]
    browser.get(search_server.url + "/")
    body = browser.find_element(By.TAG_NAME, "body")
    WebDriverWait(browser, 60).until(lambda _: body.get_attribute("data-ready") == "true")
    assert "64 documents" in browser.find_element(By.ID, "server-info").text
    box = browser.find_element(By.ID, "query")
    box.send_keys(query)
    box.send_keys(Keys.ENTER)
    WebDriverWait(browser, 120).until(lambda _: body.get_attribute("data-searched") == query)

    api = search_server.client.post("/search", json={"query": query, "top_k": 10, "explain": True,
                                                     "highlight": True, "return_text": True}).json()["results"][0]
    # the query expansion, heaviest first
    expansion = browser.find_elements(By.CSS_SELECTOR, "#expansion li.term")
    assert [e.get_attribute("data-term") for e in expansion] == [t["term"] for t in api["query_terms"]]

    hits = browser.find_elements(By.CSS_SELECTOR, "#hits li.hit")
    assert [h.get_attribute("data-id") for h in hits] == [hit["id"] for hit in api["hits"]]
    marks_seen = 0
    for element, hit in zip(hits, api["hits"]):
        marks = element.find_elements(By.CSS_SELECTOR, "mark.match")
        highlighted = {mark.get_attribute("data-term") for mark in marks}
        listed = {chip.get_attribute("data-term") for chip in element.find_elements(By.CSS_SELECTOR, ".expansion-match")}
        assert highlighted == {span["term"] for span in hit["highlights"]}
        assert highlighted | listed == {term["term"] for term in hit["terms"]}
        assert not highlighted & listed
        assert element.find_element(By.CSS_SELECTOR, "p.text").text == hit["text"].strip()
        for mark in marks:
            term = mark.get_attribute("data-term")
            assert mark.text.lower().startswith(term.removeprefix("##")[:1])
            assert mark.get_attribute("title").startswith(f"{term}: ")  # the decomposition on hover
        marks_seen += len(marks)
    assert marks_seen > 0

    # click a score: the decomposition table, one row per matched term, its sum = the score
    for position, (element, hit) in enumerate(zip(hits, api["hits"])):
        table = element.find_element(By.CSS_SELECTOR, "table.decomposition")
        assert not table.is_displayed()
        element.find_element(By.CSS_SELECTOR, "button.score").click()
        assert table.is_displayed()
        rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert [row.get_attribute("data-term") for row in rows] == [term["term"] for term in hit["terms"]]
        total = float(table.find_elements(By.CSS_SELECTOR, "tfoot td")[3].text)
        assert total == pytest.approx(hit["score"], abs=1e-3)
        if position == 0:  # the screenshot: the query, its expansion and the first hits, the first one opened
            browser.execute_script("window.scrollTo(0, 0);")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            for path in (ARTIFACTS / "search_page.png", Path(tmp_path) / "search_page.png"):
                assert browser.save_screenshot(str(path))
                assert path.stat().st_size > 10_000

    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == []
