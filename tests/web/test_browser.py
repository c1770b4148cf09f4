"""The marketing console and the storefront page in a real browser (Debian's Chromium).

A real ledger server process (`loyalty-ledger serve`, PostgreSQL and SQLite) and a real
`loyalty-ledger web` process; the browser signs in, sets the tier ladder, creates a
double-points weekend (a name with markup in it, shown as text), sees it scheduled,
previews an order in its window, moves its window over now, and an Earn inside it shows
the campaign in the member's storefront activity; the storefront page before and after the
member crosses a tier; a bad key, a key of the wrong role, an expired session, a forged
CSRF token and a forged storefront link are refused.

One browser per module (each worker of pytest-xdist starts its own), one ledger and one web
process per test. With LOYALTY_WEB_SCREENSHOTS=DIR the PostgreSQL run writes the README's
screenshots there (desktop and phone width):

    LOYALTY_WEB_SCREENSHOTS=docs/screenshots .venv/bin/python -m pytest tests/web -n 0 -k postgresql
"""

from __future__ import annotations

import os
import re
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from clients.web.sessions import SESSION_SALT
from loyalty.client import LedgerClient
from loyalty.v1 import common_pb2, programs_pb2
from tests import browser as chromium
from tests.cli.processes import CLI, ServerProcess, free_port, wait_until
from tests.databases import postgres_database, sqlite_database

ZONE = "Europe/Paris"
SECRET = "test-secret-for-the-web-console"
WEB_READY = re.compile(r"web console on (http://\S+)/console")
SCREENSHOTS = os.environ.get("LOYALTY_WEB_SCREENSHOTS")
DESKTOP = (1280, 900)
PHONE = (390, 844)


@pytest.fixture(scope="module")
def driver():
    found, why = chromium.ensure_installed()
    if found is None:
        pytest.skip(why)
    session = chromium.start(*found, *DESKTOP)
    session.set_page_load_timeout(30)
    try:
        yield session
    finally:
        session.quit()


@pytest.fixture
def stack(request, tmp_path):
    database = postgres_database() if request.param == "postgresql" else sqlite_database(tmp_path)
    with database as url:
        yield from _stack(url, tmp_path)


def _program(url: str) -> dict[str, str]:
    """Migrates the database and makes the program and its keys in this process (a few
    `loyalty-ledger key create` subprocesses would cost seconds of interpreter starts)."""
    from ledger.domain.kinds import Role
    from ledger.service import keys, programs
    from ledger.store import migrate
    from ledger.store.database import Database
    from ledger.store.engine import create_engine_for

    db = Database(create_engine_for(url, pool_size=1))
    try:
        migrate.upgrade(db.engine)
        created = programs.create_program(db, "Demo shop")
        found = {"admin": created.admin_key}
        for role in ("marketing", "storefront", "events"):
            found[role] = keys.create_key(db, created.program_id, Role(role))
        return found
    finally:
        db.engine.dispose()


def _stack(url: str, tmp_path: Path):
    keys = _program(url)
    port = free_port()
    target = f"127.0.0.1:{port}"
    web_command = [str(CLI), "web", "--target", target, "--listen", f"127.0.0.1:{free_port()}", "--time-zone", ZONE]
    env_keys = {
        "LOYALTY_WEB_SECRET": SECRET,
        "LOYALTY_WEB_STOREFRONT_KEY": keys["storefront"],
        "LOYALTY_WEB_EVENTS_KEY": keys["events"],
        "LOYALTY_WEB_SHOP_NAME": "Demo shop rewards",
    }
    # The web application starts beside the ledger (it connects when first asked).
    os.environ.update(env_keys)
    try:
        web = ServerProcess(web_command, url, cwd=tmp_path)
    finally:
        for name in env_keys:
            os.environ.pop(name, None)
    with web, ServerProcess.serve(url, listen=target, cwd=tmp_path) as ledger:
        ledger.wait_serving()
        base = web.wait_for_stdout(WEB_READY).group(1)
        wait_until(lambda: _answers(base), 15, "the web application answers")
        yield {"base": base, "keys": keys, "target": target, "ledger": ledger, "web": web}


def _answers(base: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(base + "/healthz", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


# ---------------------------------------------------------------------------- browser steps


def _by(driver, css: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css)


def _all(driver, css: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, css)


def sign_in(driver, base: str, key: str) -> None:
    driver.delete_all_cookies()
    driver.get(base + "/console/signin")
    _by(driver, "input[name=api_key]").send_keys(key)
    click_through(driver, _by(driver, "form button[type=submit]"))


def click_through(driver, element) -> None:
    """Clicks a link or a submit button and waits for the next page to replace this one."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("window.__leaving = true;")  # gone with this page's window object
    element.click()
    WebDriverWait(driver, 15, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script("return !window.__leaving && document.readyState === 'complete'")
    )


def set_value(driver, css: str, value: str) -> None:
    """Sets an input's value as typed (datetime-local fields take their value this way)."""
    driver.execute_script("arguments[0].value = arguments[1];", _by(driver, css), value)


def page_text(driver) -> str:
    return _by(driver, "body").text


def shoot(driver, name: str) -> None:
    """Desktop and phone-width screenshots of the page shown, when LOYALTY_WEB_SCREENSHOTS is set."""
    if not SCREENSHOTS:
        return
    folder = Path(SCREENSHOTS)
    folder.mkdir(parents=True, exist_ok=True)
    for label, (width, height) in (("desktop", DESKTOP), ("phone", PHONE)):
        driver.set_window_size(width, height)
        full = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, min(max(height, full + 140), 4000))
        driver.save_screenshot(str(folder / f"{name}-{label}.png"))
    driver.set_window_size(*DESKTOP)


def _no_alert(driver) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        _ = driver.switch_to.alert.text


def next_saturday(zone: ZoneInfo) -> date:
    today = datetime.now(zone).date()
    return today + timedelta(days=(5 - today.weekday()) % 7 or 7)


def earn(stack, member: str, order: str, amount: int) -> None:
    with LedgerClient(stack["target"], stack["keys"]["admin"]) as ledger:
        ledger.earn(
            member_id=member,
            order=common_pb2.Order(order_id=order, channel=common_pb2.CHANNEL_WEB, amount=amount, currency="USD"),
        )


# ---------------------------------------------------------------------------- tests


@pytest.mark.postgres
@pytest.mark.parametrize("stack", ["postgresql", "sqlite"], indirect=True)
def test_marketing_sets_up_a_weekend_and_the_storefront_shows_it(driver, stack, request):
    base = stack["base"]
    backend = request.node.callspec.params["stack"]
    sign_in(driver, base, stack["keys"]["marketing"])
    assert urlsplit(driver.current_url).path == "/console", page_text(driver)
    assert "Demo shop" in page_text(driver)

    # The tier ladder, in the tier editor: Member, Silver from 100.00, Gold from 500.00.
    driver.get(base + "/console/tiers")
    names, thresholds = _all(driver, "input[name=name]"), _all(driver, "input[name=threshold]")
    multipliers = _all(driver, "input[name=multiplier]")
    ladder = (("Member", "0", "1"), ("Silver", "10000", "1.25"), ("Gold", "50000", "1.5"))
    for i, (name, threshold, multiplier) in enumerate(ladder):
        names[i].send_keys(name)
        thresholds[i].send_keys(threshold)
        multipliers[i].clear()
        multipliers[i].send_keys(multiplier)
    click_through(driver, _by(driver, "form.card button[type=submit]"))
    assert "The tiers were saved." in page_text(driver)
    assert [e.get_attribute("value") for e in _all(driver, "input[name=name]")][:3] == ["Member", "Silver", "Gold"]

    # A double-points weekend, next Saturday 00:00 to Monday 00:00, Paris time; its name holds markup.
    name = "Double points weekend <script>alert('x')</script>"
    saturday = next_saturday(ZoneInfo(ZONE))
    driver.get(base + "/console/campaigns/new")
    _by(driver, "input[name=name]").send_keys(name)
    set_value(driver, "input[name=multiplier]", "2")
    set_value(driver, "input[name=start]", f"{saturday}T00:00")
    set_value(driver, "input[name=end]", f"{saturday + timedelta(days=2)}T00:00")
    click_through(driver, _by(driver, "form.campaign-form button[type=submit]"))
    assert "The campaign was created." in page_text(driver), page_text(driver)
    row = _by(driver, "tr[data-campaign]")
    assert row.find_element("css selector", "a.name").text == name  # text, not markup
    assert row.find_element("css selector", ".state").text == "scheduled"
    assert f"{saturday:%d %b %Y} 00:00" in row.text and ZONE in row.text
    assert "2x points" in row.text
    campaign_id = row.get_attribute("data-campaign")

    # The preview of an order in its window: 100.00 earns 100 base points, doubled.
    click_through(driver, row.find_element("css selector", "a.name"))
    _by(driver, "form[action$=preview] input[name=amount]").clear()
    _by(driver, "form[action$=preview] input[name=amount]").send_keys("100.00")
    click_through(driver, _by(driver, "form[action$=preview] button"))
    assert _all(driver, "#quote"), page_text(driver)
    quote = _by(driver, "#quote").text
    assert "200 points" in quote, quote
    assert _by(driver, "#quote li.ours").text.startswith("+100")

    # Marketing moves the window over now (it started yesterday): the campaign is active.
    yesterday = datetime.now(ZoneInfo(ZONE)) - timedelta(days=1)
    set_value(driver, "input[name=start]", f"{yesterday:%Y-%m-%dT%H:%M}")
    click_through(driver, _by(driver, "form.campaign-form button[type=submit]"))
    assert "The campaign was saved." in page_text(driver)
    assert _by(driver, f"tr[data-campaign='{campaign_id}'] .state").text == "active"

    # The storefront page of a new member: 60.00 earned (doubled), still Member.
    with LedgerClient(stack["target"], stack["keys"]["admin"]) as ledger:
        ledger.enroll_member(member_id="shopper-1")
    earn(stack, "shopper-1", "order-1", 6000)
    driver.get(base + "/console/member?member_id=shopper-1")
    assert urlsplit(driver.current_url).path.startswith("/storefront/")
    storefront_url = driver.current_url
    text = page_text(driver)
    assert "Member" == _by(driver, ".tier-name").text, text
    assert "40.00 USD more to reach Silver" in _by(driver, ".needed").text
    assert _by(driver, ".points .big").text == "120"  # 60 base points, doubled by the weekend
    activity = _by(driver, ".transactions li").text
    assert "Purchase · order order-1" in activity and name in activity and "+120" in activity
    assert _by(driver, ".referral .code").text
    assert "https://shop.example/join?ref=" in _by(driver, ".referral a.share").get_attribute("href")
    _no_alert(driver)  # the campaign's <script> stayed text

    # Crossing Silver: 50.00 more makes 110.00 of qualifying spend; from now on points stay
    # pending for 14 days (a return window) and expire after 20.
    with LedgerClient(stack["target"], stack["keys"]["admin"]) as ledger:
        ledger.update_program(
            program=programs_pb2.Program(pending_days=14, expiry_mode=programs_pb2.EXPIRY_MODE_ROLLING, expiry_days=20),
            update_mask=["pending_days", "expiry_mode", "expiry_days"],
        )
    earn(stack, "shopper-1", "order-2", 5000)
    driver.get(storefront_url)
    assert _by(driver, ".tier-name").text == "Silver"
    assert "390.00 USD more to reach Gold" in _by(driver, ".needed").text
    assert "to keep Silver after" in _by(driver, ".keep").text
    points = [e.text for e in _all(driver, ".points > div")]
    local = datetime.now(ZoneInfo(ZONE))
    assert points[0].startswith("120\n") and points[1].startswith("100\n"), points
    assert f"100 available on {local + timedelta(days=14):%d %b %Y}" in points[1], points
    assert f"100 on {local + timedelta(days=20):%d %b %Y}" in points[2], points
    assert "New tier: Silver" in page_text(driver)  # the tier change in the activity
    # The phone width keeps everything on screen (no sideways scrolling).
    driver.set_window_size(*PHONE)
    assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
    driver.set_window_size(*DESKTOP)
    if backend == "postgresql":
        shoot(driver, "storefront")

    # The overview: points per day (from the events key), tier mix and budget burn, over a
    # few more members' last days (orders backdated, some points spent).
    now = datetime.now(ZoneInfo(ZONE))
    with LedgerClient(stack["target"], stack["keys"]["admin"]) as ledger:
        bonus = programs_pb2.Campaign(
            name="Store opening bonus", time_zone=ZONE, bonus_points=25, budget=400,
            conditions=programs_pb2.CampaignConditions(channels=[common_pb2.CHANNEL_POS]),
        )
        bonus.start_time.FromDatetime(now - timedelta(days=30))
        bonus.end_time.FromDatetime(now + timedelta(days=10))
        ledger.create_campaign(campaign=bonus)
        for n in range(5):
            ledger.enroll_member(member_id=f"regular-{n}")
            for day in range(n, 26, 3):
                order = common_pb2.Order(
                    order_id=f"regular-{n}-{day}", channel=common_pb2.CHANNEL_POS, amount=600 + 1500 * n, currency="USD"
                )
                order.occur_time.FromDatetime(now - timedelta(days=day, hours=1))
                ledger.earn(member_id=f"regular-{n}", order=order)
            if n % 2:
                ledger.redeem(member_id=f"regular-{n}", points=20)
    driver.get(base + "/console")
    charts = _all(driver, "svg.chart")
    assert len(charts) == 4, page_text(driver)  # per day, tier mix, budget burn, segments
    assert "Silver" in charts[1].get_attribute("innerHTML")
    assert "Counted over all 6 members." in page_text(driver)  # the mix of every member (ListMembers)
    if backend == "postgresql":
        shoot(driver, "console-overview")
        driver.get(base + "/console/campaigns")
        shoot(driver, "console-campaigns")


@pytest.mark.postgres
@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_bad_keys_expired_sessions_forged_forms_and_links_are_refused(driver, stack):
    base = stack["base"]
    sign_in(driver, base, "lk_not_a_key")
    assert "That key was not accepted" in _by(driver, ".error").text
    sign_in(driver, base, stack["keys"]["storefront"])
    assert "needs a marketing or admin key" in _by(driver, ".error").text
    assert driver.get_cookie("loyalty_console") is None

    # A forged CSRF token: the form is refused and nothing is created.
    sign_in(driver, base, stack["keys"]["admin"])
    driver.get(base + "/console/campaigns/new")
    _by(driver, "input[name=name]").send_keys("Forged")
    set_value(driver, "form.campaign-form input[name=csrf]", "0" * 64)
    click_through(driver, _by(driver, "form.campaign-form button[type=submit]"))
    assert "security token does not belong to your session" in page_text(driver)
    driver.get(base + "/console/campaigns")
    assert "Forged" not in page_text(driver) and "No campaign yet." in page_text(driver)

    # An API error as a sentence: a window that ends before it starts.
    driver.get(base + "/console/campaigns/new")
    _by(driver, "input[name=name]").send_keys("Backwards")
    set_value(driver, "input[name=start]", "2030-01-02T00:00")
    set_value(driver, "input[name=end]", "2030-01-01T00:00")
    click_through(driver, _by(driver, "form.campaign-form button[type=submit]"))
    error = _by(driver, ".error").text
    assert error.startswith("Could not create the campaign") and "Ends" in error, error
    assert "INVALID_ARGUMENT" not in error

    # A win-back campaign for the lapsed segment, with a bonus.
    set_value(driver, "form.campaign-form input[name=end]", "2030-02-01T00:00")
    _by(driver, "input[name=name]").clear()
    _by(driver, "input[name=name]").send_keys("Win-back")
    _by(driver, "input[name=effect][value=bonus]").click()
    _by(driver, "input[name=bonus]").send_keys("300")
    _by(driver, "input[name=segments][value=seg_lapsed]").click()
    click_through(driver, _by(driver, "form.campaign-form button[type=submit]"))
    row = _by(driver, "tr[data-campaign]").text
    assert "Win-back" in row and "scheduled" in row and "+300 points per order" in row and "segments lapsed" in row, row

    # An expired session: the same session id, signed two hours ago.
    cookie = driver.get_cookie("loyalty_console")["value"]
    session_id = URLSafeTimedSerializer(SECRET, salt=SESSION_SALT).loads(cookie)

    class TwoHoursAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 7200

    old = URLSafeTimedSerializer(SECRET, salt=SESSION_SALT, signer=TwoHoursAgo).dumps(session_id)
    driver.delete_cookie("loyalty_console")
    driver.add_cookie({"name": "loyalty_console", "value": old, "path": "/"})
    driver.get(base + "/console/campaigns")
    assert urlsplit(driver.current_url).path == "/console/signin"
    assert "Your session has expired" in page_text(driver)

    # A storefront link not signed by this server.
    driver.get(base + "/storefront/" + URLSafeTimedSerializer("another secret", salt="loyalty-web-storefront").dumps("x"))
    assert "This link has expired or is not valid" in page_text(driver)
