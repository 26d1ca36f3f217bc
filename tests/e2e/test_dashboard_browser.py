"""GET /dashboard in a real browser: headless Chromium (Debian's chromium + chromium-driver)
loads the page from the local runtime after signed webhooks put known answers in, and finds
the numbers in the charts and the detractor list. Saves docs/dashboard.png (the README shows
it). Skips, saying why, where Chromium cannot start; `.ci/run` installs it."""

import base64
import json
import os
import re
import shutil
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest

from nps_sync.signing import standard_sign

ROOT = Path(__file__).resolve().parents[2]
SECRETS = json.loads((ROOT / "local" / "dev-secrets.json").read_text())
TOKEN = SECRETS["api_tokens"][0]
SCREENSHOT = ROOT / "docs" / "dashboard.png"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--lang=en-GB",
)

pytestmark = pytest.mark.e2e

CUSTOMERS = {  # e-mail: plan, MRR (cents), region
    "dash-ana@example.com": ("dash-pro", 9900, "dash-EMEA"),
    "dash-bo@example.com": ("dash-starter", 1900, "dash-NA"),
    "dash-cy@example.com": ("dash-pro", 9900, "dash-EMEA"),
    "dash-di@example.com": ("dash-starter", 4900, "dash-APAC"),
}
NEWEST_COMMENT = "Billing page keeps failing"


def post(base: str, kind: str, bodies: list[dict]) -> None:
    body = json.dumps(bodies).encode()
    headers = standard_sign(
        SECRETS["providers"]["generic"]["secret"],
        f"msg_{kind}_{time.time_ns()}",
        int(time.time()),
        body,
    )
    request = urllib.request.Request(  # noqa: S310 - the local runtime, http on loopback
        f"{base}/webhooks/{kind}/generic",
        data=body,
        method="POST",
        headers={**headers, "content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        assert answer.status == 202, answer.read()


def get(base: str, path: str, **query: str) -> dict:
    request = urllib.request.Request(  # noqa: S310 - the local runtime, http on loopback
        f"{base}{path}?{urlencode(query)}", headers={"authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        return json.loads(answer.read())


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def known_answers(runtime):
    """Last month: 10, 9, 3 (NPS 33.3); this month: 9, 8, 10, 2 (NPS 25)."""
    base = runtime.url
    now = datetime.now(UTC).replace(microsecond=0)
    this_month = now - timedelta(seconds=60)
    last_month = (this_month.replace(day=1) - timedelta(days=1)).replace(day=15, hour=10, minute=0)
    updated = iso(now - timedelta(hours=1))
    post(
        base,
        "billing",
        [
            {
                "id": f"dash-bill-{i}",
                "customer": {"email": email},
                "updated_at": updated,
                "plan": plan,
                "status": "active",
                "mrr": {"amount": mrr, "currency": "EUR"},
            }
            for i, (email, (plan, mrr, _)) in enumerate(CUSTOMERS.items())
        ],
    )
    post(
        base,
        "crm",
        [
            {
                "id": f"dash-crm-{i}",
                "customer": {"email": email},
                "updated_at": updated,
                "region": r,
            }
            for i, (email, (_, _, r)) in enumerate(CUSTOMERS.items())
        ],
    )
    answers = [
        ("dash-1", "dash-ana", 10, last_month, None),
        ("dash-2", "dash-bo", 9, last_month, None),
        ("dash-3", "dash-cy", 3, last_month, "Reports take forever to load"),
        ("dash-4", "dash-ana", 9, this_month - timedelta(seconds=30), None),
        ("dash-5", "dash-bo", 8, this_month - timedelta(seconds=20), None),
        ("dash-6", "dash-cy", 10, this_month - timedelta(seconds=10), None),
        ("dash-7", "dash-di", 2, this_month, NEWEST_COMMENT),
    ]
    post(
        base,
        "survey",
        [
            {
                "id": response_id,
                "customer": {"email": f"{who}@example.com"},
                "score": score,
                "submitted_at": iso(at),
                "survey": "dash-relationship",
                "channel": "dash-email" if score >= 7 else "dash-app",
                **({"comment": comment} if comment else {}),
            }
            for response_id, who, score, at, comment in answers
        ],
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pro = get(base, "/nps", dimension="plan", value="dash-pro")["buckets"][0]["n"]
        starter = get(base, "/nps", dimension="plan", value="dash-starter")["buckets"][0]["n"]
        if (pro, starter) == (4, 3):
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"the answers were not aggregated in time: {(pro, starter)}")
    return {"this_month": this_month.strftime("%Y-%m"), "last_month": last_month.strftime("%Y-%m")}


def unavailable(reason: str):
    """Skip, saying why; where the browser is required (`.ci/run` sets
    NPS_SYNC_REQUIRE_BROWSER=1), fail instead."""
    if os.environ.get("NPS_SYNC_REQUIRE_BROWSER") == "1":
        pytest.fail(f"the browser test must run here: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        unavailable(f"no {CHROMIUM} / {CHROMEDRIVER}: apt-get install chromium chromium-driver")
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
    except ImportError:
        unavailable("selenium is not installed (requirements-dev.txt)")

    profile = tempfile.mkdtemp(prefix="nps-dashboard-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}", "--window-size=1280,900"):
        options.add_argument(flag)
    try:
        driver = webdriver.Chrome(
            options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER)
        )
    except WebDriverException as error:
        shutil.rmtree(profile, ignore_errors=True)
        unavailable(f"chromium could not start: {error.msg}")
    driver.set_page_load_timeout(15)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver, script: str, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(
        f"never true: {script}\n{driver.execute_script('return document.body.innerText')}"
    )


def rendered(driver) -> None:
    wait_for(driver, "return document.body.dataset.rendered === 'true'")


def attribute(driver, selector: str, name: str) -> str:
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e && e.getAttribute(arguments[1])",
        selector,
        name,
    )


@pytest.fixture(scope="module")
def signed_in(runtime, known_answers, browser):
    browser.get(f"{runtime.url}/dashboard")
    wait_for(browser, "return !document.getElementById('login').hidden")
    field = browser.find_element("id", "token")
    assert field.is_displayed() and not browser.find_element("id", "dashboard").is_displayed()
    field.send_keys(TOKEN)
    field.submit()
    rendered(browser)
    return browser


def test_the_page_asks_for_the_token_once_and_keeps_it_out_of_the_url(runtime, signed_in):
    assert signed_in.execute_script("return sessionStorage.getItem('nps-sync-token')") == TOKEN
    assert TOKEN not in signed_in.current_url
    signed_in.refresh()  # the same tab: no second prompt
    rendered(signed_in)
    assert not signed_in.find_element("id", "login").is_displayed()
    assert signed_in.find_element("id", "trend").is_displayed()


def test_nps_over_time_shows_each_months_nps_band_and_n(signed_in, known_answers):
    this_month = f'#trend g.period[data-period="{known_answers["this_month"]}"]'
    last_month = f'#trend g.period[data-period="{known_answers["last_month"]}"]'
    assert attribute(signed_in, this_month, "data-nps") == "25"
    assert attribute(signed_in, this_month, "data-n") == "4"
    assert attribute(signed_in, last_month, "data-nps") == "33.3"
    tooltip = signed_in.execute_script(
        "return document.querySelector(arguments[0] + ' > title').textContent", this_month
    )
    assert tooltip.startswith(f"{known_answers['this_month']}: NPS 25 ± ") and "n = 4" in tooltip
    labels = signed_in.execute_script(
        "return [...document.querySelectorAll(arguments[0] + ' text')].map(t => t.textContent)",
        this_month,
    )
    assert "25" in labels and "n=4" in labels
    assert signed_in.find_elements("css selector", "#trend .band")
    axis = signed_in.execute_script(
        "return [...document.querySelectorAll('#trend .axis-label')].map(t => t.textContent)"
    )
    assert "NPS" in axis and any(a.startswith("Month") for a in axis)


def test_the_switch_shows_quarters(signed_in, known_answers):
    signed_in.find_element("css selector", '[data-granularity="quarter"]').click()
    rendered(signed_in)
    month = int(known_answers["this_month"][5:])
    quarter = f"{known_answers['this_month'][:4]}-Q{(month - 1) // 3 + 1}"
    assert attribute(signed_in, f'#trend g.period[data-period="{quarter}"]', "data-n")
    signed_in.find_element("css selector", '[data-granularity="month"]').click()
    rendered(signed_in)


def test_segments_show_plain_and_revenue_weighted_nps_side_by_side(signed_in):
    pro = '#segments-plan g.segment[data-value="dash-pro"]'
    starter = '#segments-plan g.segment[data-value="dash-starter"]'
    assert attribute(signed_in, pro, "data-nps") == "50"
    assert attribute(signed_in, starter, "data-nps") == "0"
    # bo 9 (19 €), bo 8 (19 €), di 2 (49 €): weighted by MRR the detractor counts most
    assert attribute(signed_in, starter, "data-revenue-weighted-nps") == "-34.5"
    assert signed_in.find_elements("css selector", f"{starter} rect.bar-plain")
    assert signed_in.find_elements("css selector", f"{starter} rect.bar-revenue")
    assert signed_in.find_elements(
        "css selector", '#segments-region g.segment[data-value="dash-EMEA"]'
    )
    assert signed_in.find_elements(
        "css selector", '#segments-channel g.segment[data-value="dash-app"]'
    )


def test_the_distribution_shows_the_count_of_each_score_in_its_colour(runtime, signed_in):
    expected = {s["score"]: s["count"] for s in get(runtime.url, "/distribution")["scores"]}
    assert expected[2] >= 1 and expected[10] >= 2  # ours among them
    shown = signed_in.execute_script(
        "return [...document.querySelectorAll('#distribution g.score')].map(g =>"
        " [+g.dataset.score, +g.dataset.count, g.querySelector('rect').getAttribute('fill')])"
    )
    assert {score: count for score, count, _ in shown} == expected
    colours = {score: fill for score, _, fill in shown}
    assert colours[0] == colours[6] != colours[7] == colours[8] != colours[9] == colours[10]


def test_the_latest_detractor_comes_first_with_comment_plan_and_mrr(signed_in):
    first = signed_in.find_element("css selector", "#detractors li.detractor")
    assert NEWEST_COMMENT in first.text
    assert first.find_element("css selector", ".fact-plan").text == "dash-starter"
    assert "49" in first.find_element("css selector", ".fact-mrr-at-risk").text
    assert first.find_element("css selector", ".score-badge").text == "2"


def test_the_screenshot_for_the_readme(signed_in):
    size = signed_in.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = signed_in.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        },
    )
    SCREENSHOT.write_bytes(base64.b64decode(shot["data"]))
    assert SCREENSHOT.stat().st_size > 10_000


def test_at_375_px_nothing_overflows_sideways(signed_in):
    signed_in.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 375, "height": 800, "deviceScaleFactor": 1, "mobile": True},
    )
    try:
        signed_in.execute_script("document.body.dataset.rendered = 'false'")
        signed_in.execute_script("window.dispatchEvent(new Event('resize'))")
        rendered(signed_in)
        assert signed_in.execute_script("return window.innerWidth") == 375
        assert signed_in.execute_script("return document.documentElement.scrollWidth") <= 375
        widest = signed_in.execute_script(
            "return Math.max(...[...document.querySelectorAll('svg')]"
            ".map(s => s.getBoundingClientRect().right))"
        )
        assert widest <= 375
    finally:
        signed_in.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_a_refused_token_asks_again(runtime, browser, known_answers):
    browser.get(f"{runtime.url}/dashboard")
    browser.execute_script("sessionStorage.setItem('nps-sync-token', 'wrong')")
    browser.refresh()
    wait_for(browser, "return !document.getElementById('login').hidden")
    assert browser.find_element("id", "token").is_displayed()
    assert not browser.find_element("id", "dashboard").is_displayed()
    assert "refused" in browser.find_element("id", "status").text
    assert browser.execute_script("return sessionStorage.getItem('nps-sync-token')") is None


def test_the_page_loads_nothing_from_elsewhere(runtime):
    with urllib.request.urlopen(f"{runtime.url}/dashboard", timeout=10) as answer:  # noqa: S310
        page = answer.read().decode()
        policy = answer.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert not re.search(r"(https?:)?//", page)  # no address but its own, relative ones
