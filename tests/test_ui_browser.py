"""The dashboard in a real browser: Debian's chromium (headless) driven by selenium through
Debian's chromedriver, against the real `sparks serve` and the fake upstream as subprocesses.

Screenshots of each view go to $SPARKS_TEST_ARTIFACTS (docs/screenshots/ holds the committed
ones: `SPARKS_TEST_ARTIFACTS=docs/screenshots pytest tests/test_ui_browser.py`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, free_port, read_events, skip_or_fail

KEY = "sk-browser-test-key-0123456789abcdef"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
BROWSER_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,860",
)
WAIT_S = 10.0


def child_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKS_")}
    env.update(
        XDG_CONFIG_HOME=str(root / "config"),
        XDG_STATE_HOME=str(root / "state"),
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
        PYTHONUNBUFFERED="1",
        SPARKS_OPENAI_API_KEY=KEY,
        no_proxy="*",
    )
    return env


def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float = 20.0) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"{needle!r} not seen: {seen!r}")


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    if proc.stdout is not None:
        proc.stdout.close()


class Daemon:
    def __init__(self, root: Path, base: str, upstream: str) -> None:
        self.root = root
        self.base = base
        self.upstream = upstream
        self.config = root / "config.toml"
        self.log = root / "events.jsonl"

    def sparks(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sparks", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            env=child_env(self.root),
            timeout=30,
            check=True,
        )

    def login_url(self) -> str:
        return self.sparks("ui", "--no-open").stdout.strip().splitlines()[0]

    def chat(self, model: str, text: str, stream: bool = False) -> str:
        body = {"model": model, "messages": [{"role": "user", "content": text}], "stream": stream}
        request = urllib.request.Request(
            self.base + "/v1/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return response.headers["X-Request-Id"]

    def script(self, turns: list[dict[str, Any]]) -> None:
        body = {"model": "fake-model", "turns": turns}
        request = urllib.request.Request(
            self.upstream.removesuffix("/v1") + "/_fake/script", data=json.dumps(body).encode()
        )
        urllib.request.urlopen(request, timeout=10).close()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("ui-daemon")
    workspace = root / "ws"
    workspace.mkdir()
    (workspace / "notes.txt").write_text("The rate limiter lives in sparks/limiter.py\n")
    fake = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "fake_upstream.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(root),
    )
    upstream = wait_for_line(fake, "listening on").rsplit(" ", 1)[-1].strip()
    port = free_port()
    (root / "config.toml").write_text(
        f'[openai_api]\nbind = "127.0.0.1:{port}"\n'
        f'[observer]\npath = "{root / "events.jsonl"}"\nconsole = false\n'
        f'[backends.up]\nbase_url = "{upstream}"\n'
        f'[backends.down]\nbase_url = "http://127.0.0.1:{free_port()}/v1"\nmodels = ["m"]\n'
        '[aliases]\nfast = ["down/m", "up/fake-model"]\n'
        '[ghost_defaults]\nmodel = "up/fake-model"\nsandbox = "none"\n'
        '[[ghosts]]\nname = "scout"\ndescription = "Explores files; changes nothing."\n'
        f'tools = ["read_file", "list_dir", "search"]\nread_only = true\nworkspace = "{workspace}"\n'
    )
    serve = subprocess.Popen(
        [sys.executable, "-m", "sparks", "serve", "--config", str(root / "config.toml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=child_env(root),
    )
    try:
        wait_for_line(serve, "events:")
        yield Daemon(root, f"http://127.0.0.1:{port}", upstream)
    finally:
        stop(serve)
        stop(fake)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        skip_or_fail(
            "Debian chromium and chromium-driver (apt-get install chromium chromium-driver)"
        )
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        skip_or_fail("the selenium package (pip install -e '.[dev]')")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in BROWSER_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("SPARKS_TEST_ARTIFACTS")
    path = Path(configured) if configured else tmp_path_factory.mktemp("artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def wait_until(predicate: Callable[[], Any], timeout: float = WAIT_S, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.05)


def js(driver: Any, script: str, *args: Any) -> Any:
    return driver.execute_script(script, *args)


def console_errors(driver: Any, allowed: tuple[str, ...] = ()) -> list[str]:
    """Console errors since the last call (reading the log empties it), minus expected ones."""
    entries = driver.get_log("browser")
    return [
        e["message"]
        for e in entries
        if e["level"] == "SEVERE" and not any(a in e["message"] for a in allowed)
    ]


def sign_in(driver: Any, daemon: Daemon, view: str = "live") -> None:
    driver.get(daemon.login_url())
    wait_until(
        lambda: js(driver, "return document.body.dataset.state") == "signed-in", what="sign-in"
    )
    driver.get(f"{daemon.base}/ui/#{view}")
    wait_until(lambda: js(driver, f"return document.getElementById('view-{view}').dataset.loaded"))


def show(driver: Any, view: str) -> None:
    js(driver, "document.getElementById(arguments[0]).dataset.loaded = ''", f"view-{view}")
    js(driver, "location.hash = arguments[0]", view)
    wait_until(
        lambda: js(driver, f"return document.getElementById('view-{view}').dataset.loaded"),
        what=f"view {view}",
    )


def test_the_login_code_works_once_and_a_second_use_is_refused(
    daemon: Daemon, browser: Any, artifacts: Path
) -> None:
    url = daemon.login_url()
    assert url.startswith(daemon.base + "/ui/#code=")
    browser.get(url)
    wait_until(lambda: js(browser, "return document.body.dataset.state") == "signed-in")
    assert "code=" not in browser.current_url  # the used code leaves the address bar
    cookies = browser.get_cookies()
    assert [(c["httpOnly"], c["sameSite"], c["path"]) for c in cookies] == [
        (True, "Strict", "/ui/")
    ]
    assert js(browser, "return document.cookie") == ""  # HttpOnly: the page cannot read it
    assert KEY not in browser.page_source
    assert console_errors(browser) == []
    browser.delete_all_cookies()
    browser.get(url)
    wait_until(lambda: js(browser, "return document.body.dataset.state") == "signed-out")
    message = browser.find_element("id", "login-message").text
    assert "unknown, used or expired" in message
    browser.save_screenshot(str(artifacts / "login-refused.png"))
    assert console_errors(browser, allowed=("api/session", "401")) == []


def test_a_request_appears_in_live_within_two_seconds(
    daemon: Daemon, browser: Any, artifacts: Path
) -> None:
    sign_in(browser, daemon, "live")
    wait_until(lambda: browser.find_element("id", "connection").text == "live")
    sent = time.monotonic()
    rid = daemon.chat("up/fake-model", "hello from the browser test")
    row = f"#live-table tr[data-request-id='{rid}'][data-outcome='request.completed']"
    wait_until(lambda: browser.find_elements("css selector", row), timeout=2.0, what="live row")
    assert time.monotonic() - sent < 2.0
    daemon.chat("fast", "through the alias: down/m is down, up/fake-model answers")
    daemon.chat("up/fake-model", "a streamed answer has a time to first token", stream=True)
    # Live redraws its rows as events arrive: read and click in one step, in the page
    cells = js(
        browser,
        "return [...document.querySelector(arguments[0]).cells].map((c) => c.textContent)",
        row,
    )
    assert cells[1] == "self" and cells[2] == "up/fake-model"
    assert cells[3] == "backend:up/fake-model" and cells[4] == "200"
    js(browser, "document.querySelector(arguments[0]).click()", row)
    story = "#story-events li[data-event]"
    wait_until(lambda: len(browser.find_elements("css selector", story)) >= 4, what="story")
    events = js(
        browser,
        "return [...document.querySelectorAll(arguments[0])].map((li) => li.dataset.event)",
        story,
    )
    assert events[0] == "request.received" and events[-1] == "request.completed"
    assert "upstream.attempt" in events
    browser.save_screenshot(str(artifacts / "live.png"))
    assert console_errors(browser) == []


def test_a_ghost_run_shows_its_steps(daemon: Daemon, browser: Any, artifacts: Path) -> None:
    daemon.script(
        [
            {"tool_calls": [{"name": "list_dir", "arguments": {"path": "."}}]},
            {"tool_calls": [{"name": "read_file", "arguments": {"path": "notes.txt"}}]},
            {"tool_calls": [{"name": "read_file", "arguments": {"path": "../outside.txt"}}]},
            {"reply": "Found it: {last_tool_result}"},
        ]
    )
    rid = daemon.chat("sparks/scout", "where is the rate limiter?")
    show(browser, "runs")
    steps = f".run[data-request-id='{rid}'] tr.step-row"
    rows = wait_until(lambda: browser.find_elements("css selector", steps), what="ghost steps")
    cells = [[td.text for td in row.find_elements("css selector", "td")] for row in rows]
    assert [c[1] for c in cells] == ["list_dir", "read_file", "read_file"]
    assert [c[3] for c in cells] == ["ok", "ok", "failed"]  # outside the workspace: refused
    assert "notes.txt" in cells[1][2]
    bars = browser.find_elements("css selector", f".run[data-request-id='{rid}'] .timeline .step")
    assert len(bars) == 3
    browser.save_screenshot(str(artifacts / "ghost-runs.png"))
    assert console_errors(browser) == []


def test_the_activity_chart_matches_sparks_activity_json(
    daemon: Daemon, browser: Any, artifacts: Path
) -> None:
    show(browser, "activity")
    page = js(
        browser,
        """
        const view = document.getElementById('view-activity');
        const bars = (chart) => [...document.querySelectorAll(
            `svg[data-chart=${chart}] g.point`)].map((g) => ({...g.dataset}));
        return {since: view.dataset.since, by: view.dataset.by,
                series: bars('series'), breakdown: bars('breakdown')};
        """,
    )
    assert page["by"] == "model" and page["since"]
    cli = json.loads(daemon.sparks("activity", "--since", page["since"], "--json").stdout)
    expected = {row["key"]: row for row in cli["groups"]}
    shown = {bar["key"]: bar for bar in page["breakdown"]}
    assert {"up/fake-model", "sparks/scout"} <= set(shown)
    for key, bar in shown.items():
        if key == "-":  # the dashboard's own calls go on after the page's figures were taken
            assert int(bar["requests"]) <= expected[key]["requests"]
            continue
        assert (int(bar["requests"]), int(bar["errors"])) == (
            expected[key]["requests"],
            expected[key]["errors"],
        ), key
    series_total = sum(int(point["requests"]) for point in page["series"])
    assert series_total == sum(int(bar["requests"]) for bar in page["breakdown"])
    assert series_total <= cli["total"]["requests"]
    browser.save_screenshot(str(artifacts / "activity.png"))
    assert console_errors(browser) == []


def test_routes_show_providers_aliases_and_models(
    daemon: Daemon, browser: Any, artifacts: Path
) -> None:
    show(browser, "routes")
    provider = browser.find_element("css selector", "#providers-table tr[data-backend='up']")
    assert "yes" in provider.text  # reachable
    aliases = browser.find_element("id", "aliases-table").text
    assert "down/m" in aliases and "cooling" in aliases and "→ up/fake-model" in aliases
    down = browser.find_element("css selector", "#providers-table tr[data-backend='down']")
    assert "no" in down.text  # not reachable, with its last error
    fallbacks = browser.find_element("id", "fallbacks-table").text
    assert "down/m" in fallbacks and "up/fake-model" in fallbacks
    assert "sparks/scout" in browser.find_element("id", "models-table").text
    browser.save_screenshot(str(artifacts / "routes.png"))
    assert console_errors(browser) == []


class _ForeignPage(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>another site</title><p>another site</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_page_on_another_origin_cannot_read_dashboard_data(daemon: Daemon, browser: Any) -> None:
    """`localhost` is another site than `127.0.0.1`: the browser holds a dashboard cookie,
    yet a cors fetch is refused by Origin and a no-cors one arrives without the cookie."""
    assert browser.get_cookies()  # signed in on 127.0.0.1
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ForeignPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        browser.get(f"http://localhost:{server.server_address[1]}/")
        target = daemon.base + "/ui/api/activity"
        outcome = browser.execute_async_script(
            """
            const [url, done] = arguments;
            const results = {};
            fetch(url + '?probe=cors', {credentials: 'include'})
              .then((r) => r.text()).then((t) => { results.cors = t; })
              .catch((e) => { results.cors = 'blocked: ' + e.name; })
              .then(() => fetch(url + '?probe=no-cors', {credentials: 'include', mode: 'no-cors'}))
              .then((r) => { results.noCors = r.type; })
              .catch((e) => { results.noCors = 'blocked: ' + e.name; })
              .then(() => done(results));
            """,
            target,
        )
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()
    assert outcome["cors"].startswith("blocked")  # nothing readable
    assert outcome["noCors"] in ("opaque", "blocked: TypeError")
    refusals = wait_until(
        lambda: [
            e
            for e in read_events(daemon.log)
            if e["event"] == "request.rejected" and e.get("path") != "/ui/api/session"
        ],
        what="refusals",
    )
    rejected = {e["request_id"]: e for e in refusals}
    received = {
        e["request_id"]: e
        for e in read_events(daemon.log)
        if e["event"] == "request.received" and e["request_id"] in rejected
    }
    codes = sorted(
        rejected[rid]["code"] for rid in received if received[rid]["path"] == "/ui/api/activity"
    )
    # cors: refused for its Origin; no-cors: no Origin, and no cookie either (else it would be
    # refused as 403 for its Sec-Fetch-Site, not 401)
    assert codes == ["invalid_session", "origin_not_allowed"]
    console_errors(browser)  # the foreign page's own CORS error is expected; clear it
