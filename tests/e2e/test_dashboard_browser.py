"""GET /dashboard in a real browser: headless Chromium (Debian's chromium + chromium-driver)
loads the page from a local runtime of its own (`python -m local`, what `make run` starts)
holding the demo data of local/seed.py, and finds in the charts, their text alternatives and
the detractor list the numbers this test works out itself from the generated requests.

NPS_SYNC_DASHBOARD_CUSTOMERS sets the size of the demo data: 60 customers by default, as the
local runtime's aggregation through moto takes seconds per batch of answers (docs/dashboard.md).
The screenshot goes to a temporary file; NPS_SYNC_SCREENSHOT=docs/dashboard.png (`make
screenshot`) writes the one the README shows. Skips, saying why, where Chromium cannot start;
`.ci/run` installs it and sets NPS_SYNC_REQUIRE_BROWSER=1, so there it runs or fails."""

import base64
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest

from local import seed
from local.load import start_runtime

ROOT = Path(__file__).resolve().parents[2]
SECRETS = json.loads((ROOT / "local" / "dev-secrets.json").read_text())
TOKEN = SECRETS["api_tokens"][0]
CUSTOMERS = int(os.environ.get("NPS_SYNC_DASHBOARD_CUSTOMERS", "60"))
SEED = 42
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
MONTHS = 12  # periods the trend shows per granularity (dashboard.js PERIODS)
QUARTERS = 8
DETRACTORS = 20

pytestmark = pytest.mark.e2e


# --- what the demo data must show, worked out from the requests local/seed.py sends ----------


@dataclass(frozen=True)
class Answer:
    customer: str  # the seed's customer id
    score: int
    at: datetime
    comment: str | None
    channel: str


@dataclass(frozen=True)
class Billing:
    updated_at: str
    plan: str
    amount: int
    currency: str


def answers_in(requests: list[seed.Request]) -> list[Answer]:
    """Each survey answer, read from the provider's own body."""
    out = []
    for request in requests:
        if request.kind != "survey":
            continue
        body = json.loads(request.body)
        if request.provider == "generic":
            out += [
                Answer(
                    i["customer"]["id"],
                    i["score"],
                    moment(i["submitted_at"]),
                    i.get("comment"),
                    i["channel"],
                )
                for i in body
            ]
        elif request.provider == "typeform":
            form = body["form_response"]
            numbers = [a["number"] for a in form["answers"] if a["type"] == "number"]
            texts = [a["text"] for a in form["answers"] if a["type"] == "text"]
            out.append(
                Answer(
                    form["hidden"]["customer_id"],
                    numbers[0],
                    moment(form["submitted_at"]),
                    texts[0] if texts else None,
                    form["hidden"]["channel"],
                )
            )
        elif request.provider == "delighted":
            data = body["event_data"]
            out.append(
                Answer(
                    data["person_properties"]["Customer ID"],
                    data["score"],
                    datetime.fromtimestamp(data["created_at"], UTC),
                    data["comment"],
                    data["person_properties"]["channel"],
                )
            )
        elif request.provider == "formbricks":
            data = body["data"]
            out.append(
                Answer(
                    data["contactAttributes"]["userId"],
                    data["data"]["nps"],
                    moment(data["createdAt"]),
                    data["data"].get("comment"),
                    data["data"]["channel"],
                )
            )
        else:
            raise AssertionError(f"a provider this test cannot read: {request.provider}")
    return out


def profiles_in(requests: list[seed.Request]) -> tuple[dict[str, str], dict[str, Billing]]:
    """Each customer's region (CRM) and latest billing state (plan, MRR), newest wins."""
    regions: dict[str, str] = {}
    billing: dict[str, list[Billing]] = defaultdict(list)
    for request in requests:
        for item in json.loads(request.body) if request.kind != "survey" else []:
            who = item["customer"]["id"]
            if request.kind == "crm":
                regions[who] = item["region"]
            else:
                mrr = item["mrr"]
                billing[who].append(
                    Billing(item["updated_at"], item["plan"], mrr["amount"], mrr["currency"])
                )
    latest = {}
    for who, states in billing.items():
        states.sort(key=lambda b: b.updated_at)
        # two changes at the same instant would leave "the latest" to the receiver's tie rule
        assert len(states) < 2 or states[-1].updated_at != states[-2].updated_at, who
        latest[who] = states[-1]
    return regions, latest


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def category(score: int) -> str:
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


@dataclass
class Tally:
    """Promoters, passives and detractors of a set of answers, and their MRR."""

    counts: Counter = field(default_factory=Counter)
    mrr: Counter = field(default_factory=Counter)

    def add(self, answer: Answer, billing: Billing) -> None:
        self.counts[category(answer.score)] += 1
        self.mrr[category(answer.score)] += billing.amount

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    @staticmethod
    def _nps(c: Counter) -> float | None:
        total = c["promoter"] + c["passive"] + c["detractor"]
        return round((c["promoter"] - c["detractor"]) * 100 / total, 1) if total else None

    @property
    def nps(self) -> float | None:
        return self._nps(self.counts)

    @property
    def revenue_weighted(self) -> float | None:
        return self._nps(self.mrr)

    @property
    def margin(self) -> float | None:
        if not self.n:
            return None
        p, d = self.counts["promoter"] / self.n, self.counts["detractor"] / self.n
        return round(1.96 * math.sqrt((p + d - (p - d) ** 2) / self.n) * 100, 1)


@dataclass
class Expected:
    today: date
    answers: list[Answer]
    regions: dict[str, str]
    billing: dict[str, Billing]

    def tally(self, keep=lambda a: True) -> Tally:
        tally = Tally()
        for answer in self.answers:
            if keep(answer):
                tally.add(answer, self.billing[answer.customer])
        return tally

    def segment(self, dimension: str, answer: Answer) -> str:
        if dimension == "plan":
            return self.billing[answer.customer].plan
        if dimension == "region":
            return self.regions[answer.customer]
        return answer.channel

    def segments(self, dimension: str) -> dict[str, Tally]:
        values = {self.segment(dimension, a) for a in self.answers}
        return {v: self.tally(lambda a, v=v: self.segment(dimension, a) == v) for v in values}

    def months(self) -> list[str]:
        """The trend's periods: the last 12 months up to today."""
        first = self.today.year * 12 + self.today.month - 1 - (MONTHS - 1)
        return [f"{m // 12:04d}-{m % 12 + 1:02d}" for m in range(first, first + MONTHS)]

    def month(self, period: str) -> Tally:
        return self.tally(lambda a: a.at.strftime("%Y-%m") == period)

    def quarter(self, period: str) -> Tally:
        return self.tally(lambda a: f"{a.at.year:04d}-Q{(a.at.month - 1) // 3 + 1}" == period)

    def last_days(self, days: int) -> Tally:
        first = self.today - timedelta(days=days - 1)
        return self.tally(lambda a: first <= a.at.date() <= self.today)

    def newest_detractors(self) -> list[Answer]:
        found = [a for a in self.answers if a.score <= 6]
        return sorted(found, key=lambda a: a.at, reverse=True)[:DETRACTORS]


def shown(value: float | None) -> str:
    """A figure as the page writes it: one decimal, none for whole numbers, a real minus."""
    if value is None:
        return "\N{EN DASH}"
    return f"{value:.1f}".removesuffix(".0").replace("-", "\N{MINUS SIGN}")


def described(tally: Tally) -> str:
    if tally.nps is None:
        return "no answers"
    return (
        f"NPS {shown(tally.nps)} ± {shown(tally.margin)}, n = {tally.n}, "
        f"revenue-weighted {shown(tally.revenue_weighted)}"
    )


# --- the runtime with the demo data ------------------------------------------------------


def get(base: str, path: str, **query: str) -> dict:
    request = urllib.request.Request(  # noqa: S310 - the local runtime, http on loopback
        f"{base}{path}?{urlencode(query)}", headers={"authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        return json.loads(answer.read())


@dataclass
class Demo:
    url: str
    expected: Expected


@pytest.fixture(scope="module")
def demo():
    """A runtime of its own (the other e2e tests' answers would change every number), loaded
    by the seed's command line as `make run` loads it, until every answer is counted under
    its customer's latest plan."""
    today = datetime.now(UTC).date()
    requests = seed.generate(CUSTOMERS, SEED, today)
    regions, billing = profiles_in(requests)
    expected = Expected(today, answers_in(requests), regions, billing)
    process, url, _ = start_runtime()
    try:
        command = [sys.executable, "-m", "local.seed", "--url", url]
        command += ["--count", str(CUSTOMERS), "--seed", str(SEED), "--end", today.isoformat()]
        subprocess.run(command, cwd=ROOT, check=True, timeout=600)  # noqa: S603 - our module
        # plan and MRR stamps arrive after the answers: done when both segmentations agree
        want = {
            d: {v: (t.n, t.revenue_weighted) for v, t in expected.segments(d).items()}
            for d in ("plan", "region")
        }
        months = expected.months()
        want["month"] = {m: (t.n, t.revenue_weighted) for m in months for t in [expected.month(m)]}
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            found = {
                d: {
                    s["value"]: (s["n"], s["revenue_weighted_nps"])
                    for s in get(url, "/segments", dimension=d)["segments"]
                    if s["n"]
                }
                for d in ("plan", "region")
            }
            trend = get(
                url,
                "/nps",
                granularity="month",
                **{"from": f"{months[0]}-01", "to": str(today)},
            )["buckets"]
            # the trend too: older months' MRR stamps may still be arriving (a loaded machine)
            found["month"] = {b["period"]: (b["n"], b["revenue_weighted_nps"]) for b in trend}
            if found == want:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"not counted as the requests say in time: {found} != {want}")
        yield Demo(url, expected)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


# --- the browser --------------------------------------------------------------------------


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


def js(driver, script: str, *args):
    return driver.execute_script(script, *args)


def attribute(driver, selector: str, name: str) -> str | None:
    return js(
        driver,
        "const e = document.querySelector(arguments[0]); return e && e.getAttribute(arguments[1])",
        selector,
        name,
    )


def number(text: str | None) -> float | None:
    return None if text in (None, "") else float(text)


def table(driver, figure: str) -> list[list[str]]:
    """The rows of a chart's table of figures (its text alternative), header cell first."""
    return js(
        driver,
        "return [...document.querySelectorAll(arguments[0] + ' .figures tbody tr')]"
        ".map(r => [...r.cells].map(c => c.textContent))",
        figure,
    )


def label(driver, figure: str) -> str:
    return attribute(driver, f'{figure} svg[role="img"]', "aria-label") or ""


@pytest.fixture(scope="module")
def signed_in(browser, demo):
    browser.get(f"{demo.url}/dashboard")
    wait_for(browser, "return !document.getElementById('login').hidden")
    field = browser.find_element("id", "token")
    assert field.is_displayed() and not browser.find_element("id", "dashboard").is_displayed()
    field.send_keys(TOKEN)
    field.submit()
    rendered(browser)
    return browser


# --- the tests ------------------------------------------------------------------------------


def test_the_page_asks_for_the_token_once_and_keeps_it_out_of_the_url(signed_in):
    assert js(signed_in, "return sessionStorage.getItem('nps-sync-token')") == TOKEN
    assert TOKEN not in signed_in.current_url
    signed_in.refresh()  # the same tab: no second prompt
    rendered(signed_in)
    assert not signed_in.find_element("id", "login").is_displayed()
    assert signed_in.find_element("id", "trend").is_displayed()


def test_the_headline_shows_the_last_90_days_and_all_time(signed_in, demo):
    boxes = js(
        signed_in,
        "return [...document.querySelectorAll('#kpis .kpi')].map(k => [k.children[0]"
        ".textContent, k.children[1].textContent, k.children[2].textContent])",
    )
    by_label = {name: (value, detail) for name, value, detail in boxes}
    for name, tally in (
        ("Last 90 days", demo.expected.last_days(90)),
        ("All time", demo.expected.tally()),
    ):
        value, detail = by_label[name]
        assert value == shown(tally.nps), name
        assert f"± {shown(tally.margin)} · n = {tally.n} · " in detail, name
        assert detail.endswith(f"revenue-weighted {shown(tally.revenue_weighted)}"), name
    assert demo.expected.tally().n == len(demo.expected.answers) > CUSTOMERS  # ~1.2 each


def test_nps_over_time_shows_each_months_nps_band_and_n(signed_in, demo):
    months = demo.expected.months()
    shown_periods = js(
        signed_in,
        "return [...document.querySelectorAll('#trend g.period')].map(g => g.dataset.period)",
    )
    assert shown_periods == months
    for period in months:
        tally = demo.expected.month(period)
        group = f'#trend g.period[data-period="{period}"]'
        assert number(attribute(signed_in, group, "data-nps")) == tally.nps, period
        assert attribute(signed_in, group, "data-n") == str(tally.n), period
        tooltip = js(
            signed_in, "return document.querySelector(arguments[0] + ' > title').textContent", group
        )
        assert tooltip == f"{period}: {described(tally)}"
    filled = [p for p in months if demo.expected.month(p).n]
    assert len(filled) >= 10  # a year of answers: the chart is not empty
    assert signed_in.find_elements("css selector", "#trend .band")
    axis = js(
        signed_in,
        "return [...document.querySelectorAll('#trend .axis-label')].map(t => t.textContent)",
    )
    assert "NPS" in axis and any(a.startswith("Month") for a in axis)


def test_the_trend_has_every_figure_in_its_label_and_table(signed_in, demo):
    months = demo.expected.months()
    text = label(signed_in, "#trend")
    for period in months:
        assert f"{period} {described(demo.expected.month(period))}" in text
    assert table(signed_in, "#trend") == [
        [p, shown(t.nps), shown(t.margin), str(t.n), shown(t.revenue_weighted)]
        for p, t in ((p, demo.expected.month(p)) for p in months)
    ]


def test_the_switch_shows_quarters(signed_in, demo):
    signed_in.find_element("css selector", '[data-granularity="quarter"]').click()
    rendered(signed_in)
    try:
        today = demo.expected.today
        now = f"{today.year:04d}-Q{(today.month - 1) // 3 + 1}"
        periods = js(
            signed_in,
            "return [...document.querySelectorAll('#trend g.period')].map(g => g.dataset.period)",
        )
        assert len(periods) == QUARTERS and periods[-1] == now
        for period in periods:
            tally = demo.expected.quarter(period)
            group = f'#trend g.period[data-period="{period}"]'
            assert attribute(signed_in, group, "data-n") == str(tally.n), period
            assert number(attribute(signed_in, group, "data-nps")) == tally.nps, period
    finally:
        signed_in.find_element("css selector", '[data-granularity="month"]').click()
        rendered(signed_in)


@pytest.mark.parametrize("dimension", ["plan", "region", "channel"])
def test_segments_show_plain_and_revenue_weighted_nps_side_by_side(signed_in, demo, dimension):
    figure = f"#segments-{dimension}"
    want = demo.expected.segments(dimension)
    assert len(want) >= 3
    shown_values = js(
        signed_in,
        "return [...document.querySelectorAll(arguments[0] + ' g.segment')]"
        ".map(g => g.dataset.value)",
        figure,
    )
    assert sorted(shown_values) == sorted(want)
    assert shown_values == sorted(want, key=lambda v: -want[v].n)  # the biggest first
    for value, tally in want.items():
        group = f'{figure} g.segment[data-value="{value}"]'
        assert number(attribute(signed_in, group, "data-nps")) == tally.nps, value
        weighted = attribute(signed_in, group, "data-revenue-weighted-nps")
        assert number(weighted) == tally.revenue_weighted, value
        assert signed_in.find_elements("css selector", f"{group} rect.bar-plain")
        assert signed_in.find_elements("css selector", f"{group} rect.bar-revenue")
        assert f"{value} {described(tally)}" in label(signed_in, figure)
    rows = table(signed_in, figure)
    assert rows == [
        [
            v,
            shown(want[v].nps),
            shown(want[v].margin),
            str(want[v].n),
            shown(want[v].revenue_weighted),
        ]
        for v in shown_values
    ]


def test_revenue_weighting_moves_the_nps_of_a_mixed_segment(demo):
    """The demo data is worth showing: weighting by MRR changes the picture somewhere."""
    regions = demo.expected.segments("region").values()
    assert any(t.nps != t.revenue_weighted for t in regions)


def test_the_distribution_shows_the_count_of_each_score_in_its_colour(signed_in, demo):
    expected = Counter(a.score for a in demo.expected.answers)
    shown_scores = js(
        signed_in,
        "return [...document.querySelectorAll('#distribution g.score')].map(g =>"
        " [+g.dataset.score, +g.dataset.count, g.querySelector('rect').getAttribute('fill')])",
    )
    assert {score: count for score, count, _ in shown_scores} == {s: expected[s] for s in range(11)}
    colours = {score: fill for score, _, fill in shown_scores}
    assert len({colours[s] for s in range(7)}) == 1
    assert colours[6] != colours[7] == colours[8] != colours[9] == colours[10] != colours[6]
    text = label(signed_in, "#distribution")
    assert f"n = {len(demo.expected.answers)}" in text
    assert all(f"score {s}: {expected[s]}" in text for s in range(11))
    assert table(signed_in, "#distribution") == [
        [str(s), category(s), str(expected[s])] for s in range(11)
    ]


def test_the_latest_detractors_come_newest_first_with_comment_plan_and_mrr(signed_in, demo):
    want = demo.expected.newest_detractors()
    items = js(
        signed_in,
        "return [...document.querySelectorAll('#detractors li.detractor')].map(li => ({"
        " score: li.querySelector('.score-badge').textContent,"
        " day: li.querySelector('time').getAttribute('datetime'),"
        " comment: li.querySelector('.comment').textContent,"
        " plan: li.querySelector('.fact-plan').textContent,"
        " mrr: li.querySelector('.fact-mrr-at-risk').textContent}))",
    )
    assert (
        len(items) == len(want) == min(DETRACTORS, sum(a.score <= 6 for a in demo.expected.answers))
    )
    for shown_item, answer in zip(items, want, strict=True):
        billing = demo.expected.billing[answer.customer]
        assert shown_item["score"] == str(answer.score)
        assert moment(shown_item["day"]) == answer.at
        assert shown_item["comment"] == (answer.comment or "(no comment)")
        assert shown_item["plan"] == billing.plan
        # the amount in the browser's own currency format (en-GB here): digits and decimals
        assert re.sub(r"[^0-9.]", "", shown_item["mrr"]) == f"{billing.amount / 100:.2f}"
        assert billing.currency in shown_item["mrr"] or "$" in shown_item["mrr"]
    assert any(answer.comment for answer in want)


def test_the_screenshot(signed_in):
    """Into a temporary file, unless NPS_SYNC_SCREENSHOT names where (`make screenshot`)."""
    js(signed_in, "document.querySelectorAll('details.figures').forEach(d => d.open = false)")
    size = signed_in.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = signed_in.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        },
    )
    target = os.environ.get("NPS_SYNC_SCREENSHOT")
    path = ROOT / target if target else Path(tempfile.mkdtemp(prefix="nps-dashboard-")) / "s.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.stat().st_size > 10_000


def test_a_keyboard_reaches_every_chart_s_table_of_figures(signed_in):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    signed_in.refresh()
    rendered(signed_in)
    figures = ["trend", "segments-plan", "segments-region", "segments-channel", "distribution"]
    reached = []
    for _ in range(40):  # Tab through the page as a keyboard user does
        ActionChains(signed_in).send_keys(Keys.TAB).perform()
        focused = js(
            signed_in,
            "const e = document.activeElement; return e.tagName === 'SUMMARY'"
            " ? e.closest('figure').id : null",
        )
        if focused and focused not in reached:
            reached.append(focused)
            ActionChains(signed_in).send_keys(Keys.ENTER).perform()
        if len(reached) == len(figures):
            break
    assert reached == figures
    for name in figures:
        box = signed_in.find_element("css selector", f"#{name} .figures .table-box")
        assert box.is_displayed() and box.get_attribute("tabindex") == "0"
        assert box.get_attribute("aria-label") in label(signed_in, f"#{name}")
        assert js(signed_in, "return arguments[0].querySelectorAll('th[scope]').length", box)


def test_at_375_px_nothing_overflows_sideways_even_with_the_tables_open(signed_in):
    signed_in.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 375, "height": 800, "deviceScaleFactor": 1, "mobile": True},
    )
    try:
        js(signed_in, "document.body.dataset.rendered = 'false'")
        js(signed_in, "window.dispatchEvent(new Event('resize'))")
        rendered(signed_in)
        js(signed_in, "document.querySelectorAll('details.figures').forEach(d => d.open = true)")
        assert js(signed_in, "return window.innerWidth") == 375
        assert js(signed_in, "return document.documentElement.scrollWidth") <= 375
        widest = js(
            signed_in,
            "return Math.max(...[...document.querySelectorAll('svg, .table-box')]"
            ".map(s => s.getBoundingClientRect().right))",
        )
        assert widest <= 375
    finally:
        signed_in.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_a_refused_token_asks_again(browser, demo):
    browser.get(f"{demo.url}/dashboard")
    js(browser, "sessionStorage.setItem('nps-sync-token', 'wrong')")
    browser.refresh()
    wait_for(browser, "return !document.getElementById('login').hidden")
    assert browser.find_element("id", "token").is_displayed()
    assert not browser.find_element("id", "dashboard").is_displayed()
    assert "refused" in browser.find_element("id", "status").text
    assert js(browser, "return sessionStorage.getItem('nps-sync-token')") is None


def test_the_page_loads_nothing_from_elsewhere(demo):
    with urllib.request.urlopen(f"{demo.url}/dashboard", timeout=10) as answer:  # noqa: S310
        page = answer.read().decode()
        policy = answer.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert not re.search(r"(https?:)?//", page)  # no address but its own, relative ones


def test_the_write_back_panel_shows_each_destinations_health(signed_in, demo):
    """`make run` registers a destination per stand-in and the demo data writes back: each
    shows on the dashboard with its last success and its failures in the last day."""
    deadline = time.monotonic() + 60
    while True:
        health = get(demo.url, "/destinations/health")["destinations"]
        if all(d["last_success_at"] for d in health) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert sorted(d["kind"] for d in health) == ["chargebee", "hubspot", "salesforce", "stripe"]
    assert all(d["last_success_at"] and d["writes_last_day"] > 0 for d in health), health
    signed_in.refresh()
    if signed_in.find_element("id", "token").is_displayed():
        field = signed_in.find_element("id", "token")
        field.send_keys(TOKEN)
        field.submit()
    rendered(signed_in)
    wait_for(
        signed_in,
        "return document.querySelectorAll('#destinations li.destination').length === 4",
        20,
    )
    shown = {
        item.find_element("css selector", ".destination-kind").text: item.text
        for item in signed_in.find_elements("css selector", "#destinations li.destination")
    }
    after = {d["kind"]: d for d in get(demo.url, "/destinations/health")["destinations"]}
    assert set(shown) == {d["kind"] for d in health}
    before = {d["kind"]: d for d in health}
    for kind, text in shown.items():  # writes go on meanwhile: what the API said then and now
        assert re.search(r"last success 20\d\d-\d\d-\d\dT", text), text
        counts = re.search(r"\b(\d+) failures?, (\d+) writes? in the last day", text)
        assert counts, text
        # a retried write counts as a failure (a stand-in's 429 under a loaded machine, say)
        for shown_count, name in (
            (int(counts[1]), "failures_last_day"),
            (int(counts[2]), "writes_last_day"),
        ):
            # (counted over the newest 100 log entries: not always rising)
            bounds = sorted((before[kind][name], after[kind][name]))
            assert bounds[0] <= shown_count <= bounds[1], (text, name, bounds)
        assert int(counts[2]) > 0, text
