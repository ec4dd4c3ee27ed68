"""The operator page in a real headless Chromium (Debian's chromium and chromium-driver,
driven by Selenium) against real nodes."""

import os
import urllib.error
import urllib.request
import xmlrpc.client

import pytest

from support.net import free_pair, wait_for
from support.samples import picture
from support.server import b64

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert os.access(CHROMIUM, os.X_OK), f"Chromium is required for these tests ({CHROMIUM})"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def text(browser, element):
    return browser.find_element("id", element).text


def test_the_page_shows_the_node_and_its_counters_move(make_server, browser):
    node = make_server(network__node_name="page-node").start()
    node.proxy().store_image(b64(picture(640, 480)), "p/cat.jpg", "jpg", {"": [640, 480]})
    browser.get(node.url)
    wait_for(lambda: text(browser, "node") == "page-node", 10, what="the status")
    assert browser.title == "imagepipe"
    assert "wand" in text(browser, "engine") and "jpg" in text(browser, "formats")
    assert text(browser, "answered") == "store_image 1"
    node.proxy().store_image(b64(picture(320, 240)), "p/dog.jpg", "jpg", {"": [320, 240]})
    wait_for(lambda: text(browser, "answered") == "store_image 2", 10, what="the counter")
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []


def test_the_builder_s_preview_has_the_asked_size(make_server, browser):
    from selenium.webdriver.support.ui import Select

    node = make_server().start()
    node.proxy().store_image(b64(picture(800, 600)), "b/cat.jpg", "jpg", {"": [800, 600]})
    browser.get(node.url)
    wait_for(lambda: [o.text for o in browser.find_elements("css selector", "#path option")]
             == ["b/cat.jpg"], 10, what="the image list")
    for field, value in (("w", "200"), ("h", "100")):
        box = browser.find_element("id", field)
        box.clear()
        box.send_keys(value)
    Select(browser.find_element("id", "mode")).select_by_visible_text("fill")
    wait_for(lambda: browser.execute_script(
        "const p = document.getElementById('preview');"
        "return p.complete && p.naturalWidth ? [p.naturalWidth, p.naturalHeight] : null;")
        == [200, 100], 15, what="the preview")
    urls = {item.get_attribute("data-dialect"): item.text
            for item in browser.find_elements("css selector", "#urls li")}
    assert urls["native"] == "native: /r/w:200/h:100/m:fill/-/b/cat.jpg"
    with urllib.request.urlopen(node.url + "r/w:200/h:100/m:fill/-/b/cat.jpg") as answer:
        assert answer.status == 200
    assert [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"] == []


def test_a_peer_that_stops_is_shown_as_down(make_server, browser):
    port = free_pair()
    a = make_server()
    a.sections["replication"] = {"publish": f"tcp://127.0.0.1:{port}"}
    b = make_server()
    b.sections["replication"] = {"publish": f"tcp://127.0.0.1:{free_pair()}",
                                 "subscribe": f"tcp://127.0.0.1:{port}"}
    a.start()
    b.start()
    browser.get(b.url)

    def state():  # read in one script: the page redraws the rows every two seconds
        return [tuple(row) for row in browser.execute_script(
            "return [...document.querySelectorAll('#peers tbody tr')].map("
            "row => [row.className, row.cells[1].textContent]);")]

    wait_for(lambda: state() == [("up", "up")], 15, what="the peer up")
    a.stop()
    wait_for(lambda: state() == [("down", "DOWN")], 20, what="the peer down")


def test_an_xml_rpc_client_posting_to_the_root_is_unaffected(make_server):
    node = make_server().start()
    assert "store_image" in xmlrpc.client.ServerProxy(node.url).system.listMethods()
    request = urllib.request.Request(node.url, headers={"Accept": "text/html"})
    with urllib.request.urlopen(request) as answer:
        assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
        assert b"<title>imagepipe</title>" in answer.read()


def test_with_token_auth_the_page_asks_for_the_token_and_then_shows_the_images(
        make_server, browser, tmp_path):
    (tmp_path / "tokens").write_text("s3cret-token\n")
    node = make_server(network__auth="token", network__auth_file=str(tmp_path / "tokens"))
    node.start()
    proxy = xmlrpc.client.ServerProxy(node.url, headers=[("Authorization",
                                                           "Bearer s3cret-token")])
    proxy.store_image(b64(picture(400, 300)), "t/cat.jpg", "jpg", {"": [400, 300]})
    browser.get(node.url)
    login = browser.find_element("id", "login")
    wait_for(login.is_displayed, 10, what="the token form")
    assert browser.find_elements("css selector", "#path option") == []
    browser.find_element("id", "token").send_keys("wrong")
    browser.find_element("css selector", "#login button").click()
    wait_for(lambda: text(browser, "login-error") == "That token was refused.", 10,
             what="the refusal")
    box = browser.find_element("id", "token")
    box.clear()
    box.send_keys("s3cret-token")
    browser.find_element("css selector", "#login button").click()
    wait_for(lambda: [o.text for o in browser.find_elements("css selector", "#path option")]
             == ["t/cat.jpg"], 10, what="the image list, with the token")
    assert not login.is_displayed()
    wait_for(lambda: browser.execute_script(
        "const p = document.getElementById('preview');"
        "return p.complete && p.naturalWidth ? [p.naturalWidth, p.naturalHeight] : null;")
        == [267, 200], 15, what="the preview")  # the builder's default: 300 x 200, fit
    # The only errors are the two refused requests the wrong token and the first load made.
    errors = [entry["message"] for entry in browser.get_log("browser")
              if entry["level"] == "SEVERE"]
    assert errors and all("401" in message for message in errors), errors


def test_with_basic_auth_the_page_itself_asks_for_credentials(make_server, tmp_path):
    (tmp_path / "users").write_text("ops:pa55\n")
    node = make_server(network__auth="basic", network__auth_file=str(tmp_path / "users"))
    node.start()
    request = urllib.request.Request(node.url, headers={"Accept": "text/html"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request)
    assert refused.value.code == 401
    assert refused.value.headers["WWW-Authenticate"] == 'Basic realm="imagepipe"'
    request.add_header("Authorization", "Basic b3BzOnBhNTU=")  # ops:pa55
    with urllib.request.urlopen(request) as answer:
        assert b"<title>imagepipe</title>" in answer.read()


def test_with_token_auth_only_the_page_s_own_files_load_without_the_token(make_server,
                                                                            tmp_path):
    (tmp_path / "tokens").write_text("s3cret-token\n")
    node = make_server(network__auth="token", network__auth_file=str(tmp_path / "tokens"))
    node.start()
    for asset in ("", "operator/operator.js", "operator/operator.css"):
        request = urllib.request.Request(node.url + asset, headers={"Accept": "text/html"})
        with urllib.request.urlopen(request) as answer:
            assert answer.status == 200
    api = node.url + "operator/images"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(api)
    assert refused.value.code == 401
    assert refused.value.headers["WWW-Authenticate"] == 'Bearer realm="imagepipe"'
    request = urllib.request.Request(api, headers={"Authorization": "Bearer s3cret-token"})
    with urllib.request.urlopen(request) as answer:
        assert answer.status == 200
