"""The page for people, driven in Debian's headless Chromium (Playwright pointed at the system browser) against
the real service answering from a published version."""
import contextlib
import shutil

import pytest
import requests

from tests.conftest import SERVICE_EVENTS_TOKEN

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags for a closed network and a root user (no sandbox); nothing is fetched from outside.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def page(service, tmp_path_factory):
    from playwright.sync_api import sync_playwright
    base, _, _ = service
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        # The tests wait with wait_for_function, which evaluates strings in the page: the page's policy forbids
        # that, so these tabs bypass it; test_the_page_runs_under_its_content_security_policy keeps it on.
        tab = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        tab.set_default_timeout(15_000)
        tab.goto(f"{base}/")
        yield tab
        tab.screenshot(path=str(tmp_path_factory.mktemp("screenshots") / "page.png"), full_page=True)
        browser.close()


def titles(page, list_id: str) -> list[str]:
    return page.locator(f"#{list_id} li .title").all_inner_texts()


def api(service, path: str) -> dict:
    return requests.get(f"{service[0]}{path}", timeout=5).json()


def show_user(page, service, user: int) -> list[dict]:
    """Look a user up on the page; returns what the API answers for them (tests may run in any order)."""
    page.fill("#user-id", str(user))
    page.click("#user-form button")
    expected = api(service, f"/v1/users/{user}/recommendations?k=10")["items"]
    page.wait_for_function("document.querySelector('#user-results li .title')?.textContent.startsWith(%r)"
                           % expected[0]["title"])
    return expected


def test_a_user_sees_titled_recommendations(page, service):
    expected = show_user(page, service, 196)
    shown = titles(page, "user-results")
    assert shown == [f"{i['title']} ({i['year']})" if i["year"] else i["title"] for i in expected]
    assert page.inner_text("#user-note") == ""
    assert "Version " in page.inner_text("#version") and "NDCG@10" in page.inner_text("#version")


def test_clicking_a_movie_shows_similar_ones(page, service):
    movie_id = show_user(page, service, 196)[0]["movie_id"]
    first = page.locator("#user-results li").first
    clicked = first.locator(".title").inner_text()
    first.click()
    page.wait_for_function("document.querySelector('#similar-title').textContent.startsWith('Similar to')")
    assert page.inner_text("#similar-title") == f"Similar to {clicked.rsplit(' (', 1)[0]}"
    expected = api(service, f"/v1/movies/{movie_id}/similar?k=10")["items"]
    page.wait_for_function("document.querySelectorAll('#similar-results li').length === %d" % len(expected))
    assert [t.rsplit(" (", 1)[0] for t in titles(page, "similar-results")] == [i["title"] for i in expected]


def test_searching_a_title(page):
    page.fill("#search-q", "star wars")
    page.click("#search-form button")
    page.wait_for_function("document.querySelectorAll('#search-results li').length > 0")
    found = titles(page, "search-results")
    assert found[0] == "Star Wars (1977)" and all("Star Wars" in t for t in found)
    page.fill("#search-q", "zzzzqqq")
    page.click("#search-form button")
    page.wait_for_function("document.querySelector('#search-note').textContent.startsWith('No title')")
    assert titles(page, "search-results") == []


def test_picking_a_genre_of_popular_movies(page, service):
    page.select_option("#popular-genre", "Horror")
    expected = [i["title"] for i in api(service, "/v1/popular?genre=Horror&k=10")["items"]]
    page.wait_for_function("document.querySelector('#popular-results li .title')?.textContent.startsWith(%r)"
                           % expected[0])
    assert [t.rsplit(" (", 1)[0] for t in titles(page, "popular-results")] == expected
    assert all("Horror" in meta for meta in page.locator("#popular-results li .meta").all_inner_texts())


def test_an_unknown_user_sees_the_popular_fallback_explained(page, service):
    page.fill("#user-id", "999999")
    page.click("#user-form button")
    page.wait_for_function("document.querySelector('#user-note').textContent.includes('999999')")
    note = page.inner_text("#user-note")
    assert "No personal recommendations for user 999999" in note and "most popular" in note
    expected = [i["title"] for i in api(service, "/v1/popular?k=10")["items"]]
    assert [t.rsplit(" (", 1)[0] for t in titles(page, "user-results")] == expected


def test_a_malformed_user_id_is_explained_not_crashed(page):
    page.fill("#user-id", "abc")
    page.click("#user-form button")
    page.wait_for_function("document.querySelector('#user-note').className === 'error'")
    assert "user_id must be a whole number" in page.inner_text("#user-note")
    assert titles(page, "user-results") == []


def test_the_page_runs_under_its_content_security_policy(page, service):
    """Everything the page does works with the policy on, the browser reports no violation of it, and a script
    the page did not ship (what an injected one would be) is refused."""
    from playwright.sync_api import (  # expect's waits run outside the page's scripts
        Error,
        expect,
    )
    tab = page.context.browser.new_page()
    refused = []
    tab.on("console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text
           else None)
    try:
        response = tab.goto(f"{service[0]}/?user=196")
        assert "script-src 'self'" in response.headers["content-security-policy"]
        expect(tab.locator("#user-results li")).to_have_count(10, timeout=15_000)
        tab.locator("#user-results li").first.click()
        expect(tab.locator("#similar-title")).to_contain_text("Similar to", timeout=15_000)
        tab.fill("#search-q", "star wars")
        tab.click("#search-form button")
        expect(tab.locator("#search-results li").first).to_contain_text("Star Wars", timeout=15_000)
        refused_by_the_page = list(refused)
        with contextlib.suppress(Error):  # Playwright raises when the browser refuses the script
            tab.add_script_tag(content="document.body.dataset.injected = 'yes'")
        injected = tab.evaluate("document.body.dataset.injected")
    finally:
        tab.close()
    assert refused_by_the_page == []
    assert injected is None and refused


def test_the_address_opens_and_follows_a_user(page, service):
    tab = page.context.browser.new_page(bypass_csp=True)
    try:
        tab.goto(f"{service[0]}/?user=196&genre=Drama")
        expected = [i["title"] for i in api(service, "/v1/users/196/recommendations?k=10&genre=Drama")["items"]]
        tab.wait_for_function("document.querySelector('#user-results li .title')?.textContent.startsWith(%r)"
                              % expected[0])
        assert [t.rsplit(" (", 1)[0] for t in titles(tab, "user-results")] == expected
        assert tab.input_value("#user-id") == "196" and tab.input_value("#user-genre") == "Drama"
    finally:
        tab.close()
    show_user(page, service, 405)  # the genre select is "any" on this tab
    page.wait_for_function("location.search === '?user=405'")


def test_a_person_dismisses_and_rates_movies_on_the_page_and_their_list_changes(page, service):
    """The page posts through its own same-origin route (the events token never reaches the browser): a movie
    marked "not interested" and one rated leave the list at once, and the list stays ten long."""
    user = 23
    assert SERVICE_EVENTS_TOKEN not in page.content()
    before = [i["title"] for i in show_user(page, service, user)]
    page.locator("#user-results li").nth(0).get_by_role("button", name="Not interested").click()
    page.wait_for_function("!document.querySelector('#user-results li .title').textContent.startsWith(%r)"
                           % before[0])
    page.locator("#user-results li").nth(0).get_by_role("button", name="★ 5").click()
    page.wait_for_function("!document.querySelector('#user-results li .title').textContent.startsWith(%r)"
                           % before[1])
    after = titles(page, "user-results")
    assert len(after) == 10 and not {before[0], before[1]} & {t.split(" (")[0] for t in after}
    assert "rated" in page.inner_text("#user-note")
    shown = [i["title"] for i in api(service, f"/v1/users/{user}/recommendations?k=10")["items"]]
    assert shown[:8] == before[2:10]  # the same answer the API gives: the two are gone, the rest moved up


def test_genre_years_different_ones_and_because_on_the_page(page, service):
    """A person picks a genre and years, sees ten with the popular picks marked, asks for different ones, and
    reads why each of their own is there."""
    show_user(page, service, 7)
    assert page.locator("#user-results li .because").count() >= 9
    metas = page.locator("#user-results li .meta").all_inner_texts()
    assert metas and not any("score" in meta or "0." in meta for meta in metas)  # no model score shown a person
    # the "only new movies" box sits against its words (a 6rem-wide input once put it far from them)
    gap = page.evaluate("""() => { const box = document.querySelector('#popular-new');
        const range = document.createRange(); range.selectNodeContents(box.parentElement);
        range.setStartAfter(box); return range.getBoundingClientRect().left - box.getBoundingClientRect().right; }""")
    assert 0 <= gap < 12
    first_because = page.locator("#user-results li .because").first.inner_text()
    expected = api(service, "/v1/users/7/recommendations?k=10")["items"][0]["because"]["title"]
    assert first_because == f"Because you rated {expected}"
    page.select_option("#user-genre", "Western")
    page.fill("#user-year-min", "1940")
    page.fill("#user-year-max", "1969")
    page.click("#user-form button[type=submit]")
    wanted = api(service, "/v1/users/7/recommendations?k=10&genre=Western&year_min=1940&year_max=1969")
    page.wait_for_function("document.querySelector('#user-results li .title')?.textContent.startsWith(%r)"
                           % wanted["items"][0]["title"])
    assert len(titles(page, "user-results")) == len(wanted["items"])
    metas = page.locator("#user-results li .meta").all_inner_texts()
    assert all("Western" in meta for meta in metas)
    assert sum("popular pick" in meta for meta in metas) == wanted["filled"] > 0
    assert "popular picks" in page.inner_text("#user-note")
    page.wait_for_function("location.search.includes('year_min=1940')")
    page.select_option("#user-genre", "")
    page.fill("#user-year-min", "")
    page.fill("#user-year-max", "")
    plain = show_user(page, service, 7)
    different = api(service, "/v1/users/7/recommendations?k=10&diversity=0.7")["items"]
    assert different != plain
    page.click("#user-different")
    page.wait_for_function("location.search.includes('diversity=0.7')")
    page.wait_for_function("[...document.querySelectorAll('#user-results li .title')].map(e => e.textContent)"
                           ".join('|') === %r" % "|".join(f"{i['title']} ({i['year']})" for i in different))
    page.click("#user-form button[type=submit]")  # back to the list's own order
    page.wait_for_function("!location.search.includes('diversity')")
