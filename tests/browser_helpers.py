"""Headless Chromium (the Debian package, never a downloaded one) driven by Playwright.

Label Studio's CSS class names are hashed at build time, so the helpers find things by what a
person sees or by the attributes the labeling editor sets for its own tests: text, roles,
`data-testid`, and the `name` of each choice's input (the choice's value).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Locator, Page, expect, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Tall enough for the whole chat-review form: Label Studio's page does not scroll, its panes do.
VIEWPORT = {"width": 1440, "height": 1000}
#: The labeling editor takes 6-10 s to render on 2 cores; CI may be slower still.
TIMEOUT_MS = 90_000
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "browser"


class Screenshots:
    """Full-page screenshots numbered in the order taken: `01-login.png`, `02-...`.

    The folder belongs to the browser test: screenshots of an earlier run are removed first.
    """

    def __init__(self, page: Page, folder: Path) -> None:
        self.page = page
        self.folder = folder
        self.taken: list[Path] = []
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.png"):
            old.unlink()

    def take(self, name: str) -> Path:
        path = self.folder / f"{len(self.taken) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        return path


@contextmanager
def chromium_page(artifacts: Path) -> Iterator[Page]:
    """A page in a fresh browser context; on failure its last state is saved as `failure.png`.

    Actions and `expect` assertions both wait up to TIMEOUT_MS.
    """
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: install Debian's chromium (make install)"
    expect.set_options(timeout=TIMEOUT_MS)  # assertions wait as long as actions do
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            try:
                yield page
            except BaseException:
                artifacts.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(artifacts / "failure.png"), full_page=True)
                raise
        finally:
            browser.close()


def login(page: Page, base_url: str, username: str, password: str) -> None:
    """Sign in through Label Studio's own form; returns once it has let us past it."""
    page.goto(f"{base_url}/user/login/")
    page.fill("input[name=email]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/user/login" not in url, wait_until="commit")


def open_labeling(page: Page, url: str) -> Locator:
    """Go to a labeling URL and wait until the dialogue is drawn; returns its first turn."""
    page.goto(url)
    first_turn = page.get_by_test_id("phrase:0")
    first_turn.wait_for()
    return first_turn


def choice_input(page: Page, value: str, kind: str = "checkbox") -> Locator:
    """The input of a `<Choice value=...>`: the editor names each input after its value."""
    return page.locator(f'input[type="{kind}"][name="{value}"]')


def corrected_answer(page: Page) -> Locator:
    """The `corrected_answer` TextArea control (its regions, edit and save buttons): in the
    generated configs, the last of the two text areas, after the `flag_reasons` list."""
    return page.get_by_test_id("textarea-control").last


def flag_reasons(page: Page) -> Locator:
    """The read-only `flag_reasons` list under the flags: one line per pre-selected flag."""
    return page.get_by_test_id("textarea-control").first


def data_manager_tab(page: Page, title: str) -> Locator:
    """A Data Manager tab (saved view) by its title."""
    return page.get_by_role("tab", name=title, exact=True)


def submit_button(page: Page) -> Locator:
    """The bottom bar's Submit button; once the annotation is saved, Update takes its place."""
    return page.locator("button[name=submit]")
