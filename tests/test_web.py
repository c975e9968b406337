"""The web app: the session cookie and its CSRF check over HTTP, the security headers, and the
app itself in a real browser (Debian's Chromium driven by Playwright): a trader's whole path,
live updates that touch only the changed market's row, a dropped stream said on screen and
caught up, accessibility (axe-core) and screenshots of every page at phone and desktop sizes
(under web/test-output/)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal

import httpx
import psycopg
import pytest

from tests.conftest import ADMIN_URL, DB, ROOT, SECRET, rpc_sql, start_server, unique

OUT = ROOT / "web" / "test-output"
AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def coins_text(x) -> str:
    """A number of coins as the app writes it: grouped, 2 to 6 decimals."""
    text = f"{Decimal(str(x)):,.6f}"
    whole, frac = text.split(".")
    return f"{whole}.{frac.rstrip('0').ljust(2, '0')}"


def pct_text(p) -> str:
    """A price as the app writes it: a percentage with one decimal."""
    return f"{(Decimal(str(p)) * 100).quantize(Decimal('0.1'), ROUND_HALF_UP)}%"


def signup_over_http(base: str) -> tuple[str, dict]:
    name = unique("w")
    r = httpx.post(f"{base}/api/v1/rpc/signup", json={"username": name, "password": "password123"})
    assert r.status_code == 200, r.text
    return name, r.json()


# ---- over HTTP: the cookie, CSRF, headers

def test_the_session_cookie_is_httponly_strict_and_carries_no_token_in_the_body(server, db):
    name = unique("c")
    r = httpx.post(f"{server}/api/v1/session", headers={"Origin": server},
                   json={"username": name, "password": "password123", "signup": True})
    assert r.status_code == 200, r.text
    assert "token" not in r.json() and r.json()["username"] == name and r.json()["logged_in"]
    cookie = r.headers["set-cookie"]
    parts = [p.strip().lower() for p in cookie.split(";")]
    assert parts[0].startswith("betjee_session=")
    assert "httponly" in parts and "samesite=strict" in parts and "path=/" in parts
    assert "secure" not in parts  # plain http: a Secure cookie would never come back
    assert any(p.startswith("max-age=") and int(p.split("=")[1]) > 0 for p in parts)
    # the cookie signs the trader in, as a bearer token does
    me = httpx.get(f"{server}/api/v1/rpc/me", cookies=r.cookies)
    assert me.status_code == 200 and me.json()["username"] == name
    # logging in again answers a fresh cookie; logging out forgets it
    again = httpx.post(f"{server}/api/v1/session", headers={"Origin": server},
                       json={"username": name, "password": "password123"})
    assert again.status_code == 200 and again.cookies.get("betjee_session")
    out = httpx.delete(f"{server}/api/v1/session", headers={"Origin": server}, cookies=again.cookies)
    assert out.status_code == 200
    assert "max-age=0" in out.headers["set-cookie"].lower()


def test_a_refused_login_sets_no_cookie(server):
    name, _ = signup_over_http(server)
    r = httpx.post(f"{server}/api/v1/session", headers={"Origin": server},
                   json={"username": name, "password": "wrong-password"})
    assert r.status_code == 401 and r.json()["code"] == "BJ022"
    assert "set-cookie" not in r.headers


def test_a_cookie_write_from_another_origin_or_none_is_refused_and_changes_nothing(server, db, make_market):
    market = make_market()
    name = unique("c")
    login = httpx.post(f"{server}/api/v1/session", headers={"Origin": server},
                       json={"username": name, "password": "password123", "signup": True})
    jar = login.cookies
    balance = lambda: db.execute("select balance from bj.users where username = %s", [name]).fetchone()["balance"]
    before = balance()
    trade = {"market": market, "outcome": "YES", "side": "buy", "shares": 5}
    for headers in ({}, {"Origin": "https://evil.example"}, {"Origin": "null"},
                    {"Origin": server.replace("127.0.0.1", "localhost")}):
        r = httpx.post(f"{server}/api/v1/rpc/trade", json=trade, cookies=jar, headers=headers)
        assert r.status_code == 403, (headers, r.text)
        assert r.json()["code"] == "PGRST403"
    assert balance() == before
    assert db.execute("select count(*) as n from bj.trades t join bj.users u on u.id = t.user_id"
                      " where u.username = %s", [name]).fetchone()["n"] == 0
    # the app's own page may; a program with a bearer token needs no Origin
    ok = httpx.post(f"{server}/api/v1/rpc/trade", json=trade, cookies=jar, headers={"Origin": server})
    assert ok.status_code == 200, ok.text
    token = httpx.post(f"{server}/api/v1/rpc/login", json={"username": name, "password": "password123"}).json()["token"]
    assert httpx.post(f"{server}/api/v1/rpc/trade", json=trade,
                      headers={"Authorization": f"Bearer {token}"}).status_code == 200
    # a cookie-signed read needs no Origin (it changes nothing; SameSite keeps other sites out)
    assert httpx.get(f"{server}/api/v1/rpc/me", cookies=jar).status_code == 200
    # the login endpoint itself refuses other sites (no login CSRF)
    r = httpx.post(f"{server}/api/v1/session", headers={"Origin": "https://evil.example"},
                   json={"username": name, "password": "password123"})
    assert r.status_code == 403 and "set-cookie" not in r.headers


def test_a_forged_or_expired_cookie_is_401_and_cleared(server):
    r = httpx.get(f"{server}/api/v1/rpc/me", cookies={"betjee_session": "not.a.token"})
    assert r.status_code == 401 and r.json()["code"] == "PGRST301"
    assert "betjee_session=" in r.headers["set-cookie"] and "max-age=0" in r.headers["set-cookie"].lower()


def test_the_cookie_is_secure_when_the_site_is_https(db_url):
    proc, base = start_server(db_url, BETJEE_PUBLIC_ORIGIN="https://betjee.example")
    try:
        name = unique("s")
        r = httpx.post(f"{base}/api/v1/session", headers={"Origin": "https://betjee.example"},
                       json={"username": name, "password": "password123", "signup": True})
        assert r.status_code == 200, r.text
        assert "secure" in [p.strip().lower() for p in r.headers["set-cookie"].split(";")]
        # and the public origin is the one a write must come from
        r = httpx.post(f"{base}/api/v1/session", headers={"Origin": base},
                       json={"username": name, "password": "password123"})
        assert r.status_code == 403
    finally:
        proc.terminate()
        proc.wait(10)


def test_every_response_carries_the_security_headers_and_cors_stays_closed(server):
    for path in ("/", "/static/app.css", "/assets/app.js", "/api/v1/rpc/list_markets", "/nowhere"):
        r = httpx.get(server + path)
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp, path
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "same-origin"
    page = httpx.get(server + "/")
    assert page.status_code == 200 and 'src="/assets/app.js"' in page.text and "<script>" not in page.text
    assert httpx.get(server + "/assets/app.js").headers["content-type"].startswith("text/javascript")
    # what the app loads travels compressed; the stream never (each event leaves at once)
    assert httpx.get(server + "/assets/app.js", headers={"Accept-Encoding": "gzip"}).headers["content-encoding"] == "gzip"
    with httpx.stream("GET", server + "/api/v1/stream", headers={"Accept-Encoding": "gzip"}) as s:
        assert s.status_code == 200 and "content-encoding" not in s.headers
    pre = httpx.options(f"{server}/api/v1/rpc/trade", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in pre.headers


# ---- in the browser

@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True,
                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


def shoot(page, name: str) -> None:
    """A screenshot of the page at phone and desktop sizes; the phone has no sideways scroll."""
    OUT.mkdir(parents=True, exist_ok=True)
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        page.wait_for_timeout(150)
        page.screenshot(path=str(OUT / f"{name}-{label}.png"), full_page=True)
        if label == "phone":
            wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert wide <= 0, f"{name} scrolls sideways on a phone by {wide}px"


def axe_violations(browser, base: str, cookies: list, paths: list[str]) -> dict[str, list]:
    """axe-core's serious and critical violations per page (its script is injected, so this
    context alone lets it past the CSP)."""
    context = browser.new_context(bypass_csp=True, viewport=DESKTOP)
    context.add_cookies(cookies)
    found = {}
    for path in paths:
        page = context.new_page()
        page.goto(base + path)
        page.wait_for_selector("main h1")
        page.wait_for_timeout(500)
        page.add_script_tag(path=str(AXE))
        result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]
               if v["impact"] in ("serious", "critical")]
        if bad:
            found[path] = bad
        page.close()
    context.close()
    return found


def test_a_trader_signs_up_trades_sees_prices_move_and_logs_out(browser, server, db, make_market):
    # beside it, markets that are hard to lay out on a phone: long names, many outcomes
    wide = unique("a-rather-long-market-code-")
    db.execute("select admin.create_market(%s, %s, %s)",
               [wide, "Which of these remarkably long-winded outcomes " * 3,
                [f"OUTCOME_{'X' * 30}_{i}" for i in range(8)]])
    market = make_market()
    bonus = db.execute("select value from admin.settings() where key = 'signup_bonus'").fetchone()["value"]
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # (the browser logs every refused call as an error too: those are the app's to show)
    page.on("console", lambda m: m.type == "error" and not m.text.startswith("Failed to load resource")
            and errors.append(m.text))
    failed = []
    page.on("response", lambda r: r.status == 404 and failed.append(r.url))

    # sign up: the bonus is the balance
    page.goto(server + "/#/signup")
    name = unique("t")
    page.fill("#username", name)
    page.fill("#password", "password123")
    page.click("form button[type=submit]")
    page.wait_for_selector("[data-testid=account-balance]")
    assert page.inner_text("[data-testid=balance]") == coins_text(bonus)
    assert page.inner_text("[data-testid=account-balance]") == coins_text(bonus)
    user_id = db.execute("select id from bj.users where username = %s", [name]).fetchone()["id"]

    # the markets list, then the market: a live quote from api.quote, to the digit
    page.goto(server + "/#/")
    page.wait_for_selector(f"tr[data-market='{market}']")
    shoot(page, "markets")
    page.click(f"tr[data-market='{market}'] a")
    page.wait_for_selector("[data-testid=quote-total]")
    quote = rpc_sql(db, user_id, "quote", market=market, outcome="YES", side="buy", shares=10, tolerance="0.01")
    assert page.inner_text("[data-testid=quote-total]") == coins_text(quote["total"])
    assert page.inner_text("[data-testid=guard]") == coins_text(quote["max_total"])
    page.evaluate("window.__still_here = true")  # no reload from here on

    # buy: the receipt is the quote, the balance and the price follow
    page.click("button.primary.buy")
    page.wait_for_selector("[data-testid=receipt]")
    receipt = db.execute("select total, prices_after[1] as p from bj.trades where user_id = %s", [user_id]).fetchone()
    assert receipt["total"] == Decimal(str(quote["total"]))
    assert coins_text(receipt["total"]) in page.inner_text("[data-testid=receipt]")
    balance = db.execute("select balance from bj.users where id = %s", [user_id]).fetchone()["balance"]
    page.wait_for_function("([b]) => document.querySelector('[data-testid=balance]').innerText === b", arg=[coins_text(balance)])
    page.wait_for_function("([p]) => document.querySelector('[data-testid=price-YES]').innerText === p",
                           arg=[pct_text(receipt["p"])])

    # another trader's trade over the API moves the price on this open page
    _, other = signup_over_http(server)
    r = httpx.post(f"{server}/api/v1/rpc/trade", headers={"Authorization": f"Bearer {other['token']}"},
                   json={"market": market, "outcome": "YES", "side": "buy", "shares": 60})
    assert r.status_code == 200, r.text
    page.wait_for_function("([p]) => document.querySelector('[data-testid=price-YES]').innerText === p",
                           arg=[pct_text(r.json()["price_after"])], timeout=10000)
    assert page.evaluate("window.__still_here === true")
    shoot(page, "market")

    # a stop-loss placed, listed, cancelled
    page.fill("input[name=trigger_price]", "0.3")
    page.fill("input[name=stop_shares]", "10")
    page.click("[data-testid=stop-form] button[type=submit]")
    page.wait_for_selector("[data-testid=stop-done]")
    order_id = db.execute("select id from bj.orders where user_id = %s and kind = 'stop_loss' and status = 'open'",
                          [user_id]).fetchone()["id"]
    page.wait_for_selector(f"tr[data-order='{order_id}']")
    page.click(f"tr[data-order='{order_id}'] button")
    page.wait_for_selector(f"tr[data-order='{order_id}']", state="detached")
    assert db.execute("select status from bj.orders where id = %s", [order_id]).fetchone()["status"] == "cancelled"

    # a refused trade says why and changes nothing
    before = db.execute("select balance, (select count(*) from bj.trades where user_id = %s) as n"
                        " from bj.users where id = %s", [user_id, user_id]).fetchone()
    page.fill("#t-amount", "100000")
    page.wait_for_function("() => document.querySelector('[data-testid=quote-total]')"
                           " && document.querySelector('[data-testid=quote-total]').innerText.length > 8")
    page.click("button.primary.buy")
    page.wait_for_selector("[data-testid=trade-error]")
    assert "available" in page.inner_text("[data-testid=trade-error]")
    after = db.execute("select balance, (select count(*) from bj.trades where user_id = %s) as n"
                       " from bj.users where id = %s", [user_id, user_id]).fetchone()
    assert after == before

    # the portfolio: the position with its cost basis, value and P&L from api.me
    page.goto(server + "/#/portfolio")
    row = page.wait_for_selector(f"tr[data-position='{market}/YES']")
    me = rpc_sql(db, user_id, "me")
    position = next(p for p in me["positions"] if p["market"] == market)
    cells = row.inner_text().split("\t")
    assert coins_text(position["cost_basis"]) in cells and coins_text(position["pnl"]) in cells
    shoot(page, "portfolio")
    db.execute("select admin.refresh_leaderboard()")  # the ranking the minute's job makes
    page.goto(server + "/#/leaderboard")
    board = page.wait_for_selector("[data-testid=leaderboard]")
    assert "Ranked at" in board.inner_text()
    shoot(page, "leaderboard")

    # accessibility of every page, signed in
    assert axe_violations(browser, server, context.cookies(),
                          ["/#/", f"/#/market/{market}", "/#/portfolio", "/#/leaderboard"]) == {}

    # log out: the cookie is gone, the app says so
    page.click("text=Log out")
    page.wait_for_selector("a[href='#/login']")
    assert page.evaluate("fetch('/api/v1/rpc/me').then(r => r.status)") == 401
    page.goto(server + "/#/login")
    page.wait_for_selector("#username")
    shoot(page, "login")
    assert axe_violations(browser, server, [], ["/#/login", "/#/signup"]) == {}
    assert errors == [] and failed == []
    context.close()


def test_one_market_changing_re_renders_its_row_and_no_other(browser, server, db, make_market):
    markets = [make_market() for _ in range(3)]
    page = browser.new_page(viewport=DESKTOP)
    page.goto(server + "/#/")
    for m in markets:
        page.wait_for_selector(f"tr[data-market='{m}'] svg.spark")
    page.wait_for_selector("[data-stream=live]")
    page.wait_for_timeout(500)
    page.evaluate("""() => {
      window.__touched = new Set();
      new MutationObserver((records) => {
        for (const r of records) {
          const el = r.target.nodeType === 1 ? r.target : r.target.parentElement;
          const row = el && el.closest('tr[data-market]');
          window.__touched.add(row ? row.dataset.market : '(the table itself)');
        }
      }).observe(document.querySelector('[data-testid=markets] tbody'),
                 {subtree: true, childList: true, characterData: true, attributes: true});
    }""")
    _, trader = signup_over_http(server)
    r = httpx.post(f"{server}/api/v1/rpc/trade", headers={"Authorization": f"Bearer {trader['token']}"},
                   json={"market": markets[1], "outcome": "YES", "side": "buy", "shares": 40})
    assert r.status_code == 200
    page.wait_for_function("([m, p]) => document.querySelector(`tr[data-market='${m}'] [data-testid=price]`).innerText === p",
                           arg=[markets[1], pct_text(r.json()["price_after"])], timeout=10000)
    page.wait_for_timeout(5600)  # and the row's trend, read again after the change
    touched = page.evaluate("[...window.__touched]")
    assert touched == [markets[1]], touched
    page.close()


def test_a_dropped_stream_is_said_on_screen_and_caught_up_on_reconnecting(browser, db_url, db, make_market, make_user):
    market = make_market()
    proc, base = start_server(db_url)
    port = int(base.rsplit(":", 1)[1])
    page = browser.new_page(viewport=DESKTOP)
    try:
        page.goto(f"{base}/#/market/{market}")
        page.wait_for_selector("[data-stream=live]")
        assert page.query_selector(".banner") is None
        proc.terminate()
        proc.wait(10)
        page.wait_for_selector("[data-stream=reconnecting]", timeout=10000)
        assert "reconnecting" in page.inner_text(".banner").lower()
        # a trade while the stream is down is shown once it is back, without a reload
        user = make_user()
        with psycopg.connect(db_url, autocommit=True) as conn:
            receipt = rpc_sql(conn, user["user_id"], "trade", market=market, outcome="YES", side="buy", shares=30)
        proc, _ = start_server(db_url, port=port)
        page.wait_for_selector("[data-stream=live]", timeout=15000)
        assert page.query_selector(".banner") is None
        page.wait_for_function("([p]) => document.querySelector('[data-testid=price-YES]').innerText === p",
                               arg=[pct_text(receipt["price_after"])], timeout=10000)
    finally:
        page.close()
        proc.terminate()
        proc.wait(10)


def test_a_new_visitor_is_shown_every_market_however_many_pages_they_take(browser):
    """More markets than one page of list_markets holds (the app asks for 500): it reads page
    after page, each after the last code of the one before, and lists every market. (On a
    database of its own, so that the count is known and no other test pays for the markets.)"""
    name = unique("betjee_web_pages_")
    url = subprocess.run([*DB, "create", ADMIN_URL, name], check=True, capture_output=True, text=True).stdout.strip()
    try:
        subprocess.run([*DB, "up", url], check=True, capture_output=True,
                       env={**os.environ, "BETJEE_JWT_SECRET": SECRET, "BETJEE_NO_CRON": "1"})
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("select count(admin.create_market(format('p%s', i), format('Market %s', i)))"
                         " from generate_series(1, 520) i")
        proc, base = start_server(url)
        page = browser.new_page(viewport=DESKTOP)
        asked: list[str] = []
        page.on("request", lambda r: "/rpc/list_markets" in r.url and asked.append(r.url))
        try:
            page.goto(base + "/#/")
            page.click("button[aria-pressed]:has-text('All')")
            page.wait_for_function("() => document.querySelectorAll('tr[data-market]').length >= 520", timeout=20000)
            shown = page.evaluate("[...document.querySelectorAll('tr[data-market]')].map((r) => r.dataset.market)")
            assert sorted(shown) == sorted(f"p{i}" for i in range(1, 521)), "every market, once"
            assert len(asked) == 2 and "after=p500" in asked[1] and "max_rows=500" in asked[0], asked
        finally:
            page.close()
            proc.terminate()
            proc.wait(10)
    finally:
        subprocess.run([*DB, "drop", ADMIN_URL, name], check=True, capture_output=True)


def tab_to(page, selector: str, most: int = 60) -> None:
    """Press Tab until the element matching selector has the focus."""
    for _ in range(most):
        if page.evaluate("(s) => document.activeElement && document.activeElement.matches(s)", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


def test_the_keyboard_alone_logs_in_and_trades_and_dark_follows_the_system(browser, server, db, make_market):
    market = make_market()
    name, _ = signup_over_http(server)
    context = browser.new_context(viewport=DESKTOP, color_scheme="dark")
    page = context.new_page()
    page.goto(server + "/#/login")
    page.wait_for_selector("#username")
    tab_to(page, "#username")
    page.keyboard.type(name)
    page.keyboard.press("Tab")
    page.keyboard.type("password123")
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-testid=username]")
    page.goto(f"{server}/#/market/{market}")
    page.wait_for_selector("[data-testid=quote-total]")
    tab_to(page, "#t-amount")
    page.keyboard.press("Control+A")
    page.keyboard.type("3")
    page.wait_for_function("() => document.querySelector('[data-testid=quote]').innerText.includes('Shares\\n3')")
    tab_to(page, "button.primary.buy")
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-testid=receipt]")
    assert db.execute("select count(*) as n from bj.trades t join bj.users u on u.id = t.user_id"
                      " where u.username = %s", [name]).fetchone()["n"] == 1
    # the system's dark theme: a dark page
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert sum(int(x) for x in background[4:-1].split(",")[:3]) < 150, background
    shoot(page, "market-dark")
    context.close()


def test_a_retry_after_a_dropped_answer_trades_once(browser, server, db, make_market):
    market = make_market()
    name, _ = signup_over_http(server)
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.goto(server + "/#/login")
    page.fill("#username", name)
    page.fill("#password", "password123")
    page.click("form button[type=submit]")
    page.wait_for_selector("[data-testid=username]")
    # the first trade reaches the server and runs, but its answer never comes back
    dropped = []

    def drop_the_first_answer(route) -> None:
        if not dropped:
            dropped.append(route.fetch().status)
            route.abort()
        else:
            route.continue_()
    page.route("**/api/v1/rpc/trade", drop_the_first_answer)
    page.goto(f"{server}/#/market/{market}")
    page.wait_for_selector("[data-testid=quote-total]")
    page.click("button.primary.buy")
    page.wait_for_selector("[data-testid=trade-error]")
    assert dropped == [200]
    assert "trades once" in page.inner_text("[data-testid=trade-error]")
    trades = "select count(*) as n from bj.trades t join bj.users u on u.id = t.user_id where u.username = %s"
    assert db.execute(trades, [name]).fetchone()["n"] == 1
    # pressing again sends the same key: the first receipt, no second trade
    page.click("button.primary.buy")
    page.wait_for_selector("[data-testid=receipt]")
    assert db.execute(trades, [name]).fetchone()["n"] == 1
    context.close()
