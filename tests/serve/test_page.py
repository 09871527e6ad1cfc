"""`trainlab serve`'s page at /, in headless Chromium (Debian's, driven by Playwright): an uploaded digit is shown with
the model's own top class and the server's probability, a file that is no image shows the server's error (and no
stale results) and the next upload still works, and a typed sentence is classified by the text model."""

import os
import re
import shutil

import httpx
import numpy as np
import pytest

pytest.importorskip("playwright.sync_api", reason="the page's test drives Chromium with playwright (pip install playwright)")

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from tests.serve.conftest import digit_images, png_bytes, running_server  # noqa: E402
from tests.text.tiny import KEYWORDS  # noqa: E402
from trainlab.serve.app import create_app  # noqa: E402
from trainlab.serve.model import ServedModel  # noqa: E402

WAIT_MS = 15_000
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip
LATENCY = re.compile(r"latency: \d+\.\d ms in the server, \d+\.\d ms round trip")


def chromium_path() -> str | None:
    return shutil.which("chromium") or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    if executable is None:
        pytest.skip("no chromium on this machine (apt-get install chromium): the page's test needs a browser")
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def problems():
    """What went wrong in the page: its script errors, console errors, and answers of 400 and above."""
    return []


@pytest.fixture
def page(browser, problems):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on("console", lambda message: problems.append(f"console: {message.text}") if message.type == "error" else None)
    page.on("response", lambda response: problems.append(f"{response.status} {response.url}") if response.status >= 400 else None)
    yield page
    context.close()


def open_page(page, url: str, name: str) -> None:
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready=true]", state="attached")
    expect(page.locator("#title")).to_have_text(name)
    assert name in page.title()
    expect(page.locator("#error")).to_have_text("")


def top_bar(result):
    bar = result.locator(".bar").first
    return bar.get_attribute("data-label"), float(bar.get_attribute("data-probability"))


def predict_file(url: str, path) -> httpx.Response:
    return httpx.post(f"{url}/predict?top=5", files={"file": (path.name, path.read_bytes(), "image/png")}, timeout=15)


def test_the_page_classifies_uploaded_digits_and_shows_the_servers_error_for_a_file_that_is_no_image(page, problems, serve_runs, tmp_path):
    served = ServedModel.from_run(serve_runs["image"])
    images, labels = digit_images()
    probabilities = served.probabilities(served.image_inputs(list(images[:60])))
    right = np.flatnonzero(probabilities.argmax(1) == labels[:60])
    assert right.size, "the tiny digits model gets none of the first 60 test images right"
    index = int(right[np.argmax(probabilities[right].max(1))])  # the one it is surest of: no near tie to flip
    other = next((int(i) for i in right if labels[i] != labels[index]), index)  # one of another class for the drop
    expected, expected_other = served.classes[labels[index]], served.classes[labels[other]]
    digit, again, second = tmp_path / f"digit-{expected}.png", tmp_path / f"again-{expected}.png", tmp_path / f"second-{expected_other}.png"
    digit.write_bytes(png_bytes(images[index]))
    again.write_bytes(digit.read_bytes())
    second.write_bytes(png_bytes(images[other]))
    broken = tmp_path / "notes.png"
    broken.write_text("these are notes, not an image\n")

    with running_server(create_app(served)) as url:
        answer = predict_file(url, digit)
        assert answer.status_code == 200
        server_top = answer.json()["predictions"][0]["top"][0]
        assert server_top["label"] == expected
        refused = predict_file(url, broken)
        assert refused.status_code == 400

        open_page(page, url, served.name)
        expect(page.locator("#image-form")).to_be_visible()
        expect(page.locator("#text-form")).to_be_hidden()
        results = page.locator("#results .result")

        # a digit the model gets right: its class on top, with the server's own probability for that file
        page.set_input_files("#file", digit)
        expect(results).to_have_count(1)
        expect(results.locator(".input-name")).to_have_text(digit.name)
        expect(results).to_have_attribute("data-label", expected)
        label, probability = top_bar(results)
        assert label == expected
        assert abs(probability - server_top["probability"]) < 1e-4
        expect(results.locator(".bar")).to_have_count(5)
        expect(results.locator("img")).to_have_count(1)  # the preview
        expect(page.locator("#latency")).to_have_text(LATENCY)
        assert page.eval_on_selector("#file", "input => input.value") == ""  # emptied: the same file again is a change

        # a file that is no image: the server's message, and the last file's answer is not left beside it
        page.set_input_files("#file", broken)
        expect(page.locator("#error")).to_have_text(refused.json()["error"])
        assert "is not an image" in page.locator("#error").text_content()
        expect(results).to_have_count(0)
        expect(page.locator("#latency")).to_have_text("")

        # the next upload, chosen by clicking the drop zone, works and clears the error
        with page.expect_file_chooser() as chooser:
            page.click("#drop")
        chooser.value.set_files(again)
        expect(results.locator(".input-name")).to_have_text(again.name)
        expect(page.locator("#error")).to_have_text("")
        expect(results).to_have_attribute("data-label", expected)
        assert top_bar(results)[0] == expected
        expect(page.locator("#latency")).to_have_text(LATENCY)

        # two files dropped at once: one result each, in their order
        drop = page.evaluate_handle(
            """(files) => {
                const transfer = new DataTransfer();
                for (const [name, bytes] of files) transfer.items.add(new File([new Uint8Array(bytes)], name, { type: "image/png" }));
                return transfer;
            }""",
            [[path.name, list(path.read_bytes())] for path in (second, digit)],
        )
        page.dispatch_event("#drop", "drop", {"dataTransfer": drop})
        expect(results).to_have_count(2)
        expect(results.locator(".input-name")).to_have_text([second.name, digit.name])
        assert [top_bar(results.nth(i))[0] for i in range(2)] == [expected_other, expected]

    assert [p for p in problems if "/predict" not in p and "status of 400" not in p] == []
    assert [p for p in problems if p.startswith("400 ")] == [f"400 {url}/predict?top=5"]  # the file that is no image only


def test_the_page_classifies_a_typed_sentence(page, problems, serve_runs):
    served = ServedModel.from_run(serve_runs["text"])
    candidates = [(f"i am so {word} today", label) for label, words in KEYWORDS.items() for word in words]
    candidates.sort(key=lambda pair: pair[0] != "i am so happy today")  # that one first, if the model gets it right
    probabilities = served.probabilities(served.text_inputs([text for text, _ in candidates]))
    right = [(text, label, p) for (text, label), p in zip(candidates, probabilities) if served.classes[p.argmax()] == label]
    assert right, "the tiny text model gets none of the keyword sentences right"
    text, expected, p = right[0]

    with running_server(create_app(served)) as url:
        open_page(page, url, served.name)
        expect(page.locator("#text-form")).to_be_visible()
        expect(page.locator("#image-form")).to_be_hidden()
        page.fill("#text", text)
        page.click("#send")
        results = page.locator("#results .result")
        expect(results).to_have_count(1)
        expect(results.locator(".input-name")).to_have_text(text)
        expect(results).to_have_attribute("data-label", expected)
        label, probability = top_bar(results)
        assert label == expected
        assert abs(probability - float(p.max())) < 1e-4
        expect(results.locator("img")).to_have_count(0)
        expect(page.locator("#latency")).to_have_text(LATENCY)
        expect(page.locator("#error")).to_have_text("")

    assert problems == []


def test_the_api_docs_render_offline_from_the_servers_own_scripts(page, problems, serve_runs):
    served = ServedModel.from_run(serve_runs["image"])
    outside = []

    def only_this_server(route):  # a request to any other host fails, as it would on a machine without internet
        if route.request.url.startswith("http://127.0.0.1"):
            route.continue_()
        else:
            outside.append((route.request.resource_type, route.request.url))
            if route.request.resource_type == "image":  # a decoration (ReDoc's logo): a blank one, so no console error
                route.fulfill(status=200, content_type="image/svg+xml", body='<svg xmlns="http://www.w3.org/2000/svg"/>')
            else:
                route.abort()

    page.route("**/*", only_this_server)
    with running_server(create_app(served)) as url:
        page.goto(url + "/docs")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text(f"trainlab serve: {served.name}")
        expect(page.locator(".opblock-summary-path").filter(has_text="/v2/models/{model}/infer")).to_have_count(1)
        page.goto(url + "/redoc")
        expect(page.locator("h1").first).to_contain_text(f"trainlab serve: {served.name}")
    # ReDoc's "powered by" logo is an image from its CDN, answered blank here; no script or style comes from outside
    assert [url for kind, url in outside if kind != "image"] == [] and problems == []
