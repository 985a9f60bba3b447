"""Admin UI fixtures.

Browser tests (marked `browser`) drive Debian's Chromium through Playwright against a real
`python run.py serve` process with the sandbox on and embedded workers, on a database of its own
(a SQLite file, or `<name>_ui_<pid>` on the MariaDB server of OUIPOST_TEST_DATABASE_URL), so the
per-test table wipes of the rest of the suite never touch it. The server and the browser are
started once per session; each test gets a fresh browser context (no cookies).

Screenshots go to test-artifacts/ui/ (not committed).

Unit tests of views and forms without a browser use the `client` fixture of tests/conftest.py and
the helpers below (sign in through the real form, read the CSRF token from a page).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ouipost.config import Settings
from tests.admin.conftest import PASSWORD, make_user  # noqa: F401 (fixture: users made through the domain)
from tests.conftest import DatabaseUnderTest, create_side_database, drop_side_database, make_env
from tests.servers import free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery staple"
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def chromium_path() -> str | None:
    configured = os.environ.get("OUIPOST_TEST_CHROMIUM", "").strip()
    if configured:
        return configured
    return shutil.which("chromium") or shutil.which("chromium-browser")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Without Chromium the browser tests cannot run; outside CI they are skipped with the reason, in
    # CI (CI=true) they fail, so a missing browser never passes silently there.
    if chromium_path() or os.environ.get("CI") == "true":
        return
    skip = pytest.mark.skip(reason="Chromium not found (apt-get install -y chromium, or set OUIPOST_TEST_CHROMIUM)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """In-process UI tests need no embedded worker polling beside them."""
    return settings.with_overrides(workers=0)


# ------------------------------------------------------------------------------------------------
# A real server


@dataclass
class UiServer:
    url: str
    process: subprocess.Popen
    env: dict[str, str]
    log_path: Path

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """Run `run.py <args>` against this server's database and settings."""
        return subprocess.run(
            [sys.executable, str(ROOT / "run.py"), *args], env=self.env, cwd=ROOT,
            capture_output=True, text=True, timeout=60, check=True,
        )

    def create_user(self, email: str, role: str, password: str = ADMIN_PASSWORD, name: str | None = None) -> None:
        self.cli("create-admin", "--email", email, "--password", password, "--role", role,
                 "--name", name or role.title())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def ui_database_url(test_database: DatabaseUnderTest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not test_database.is_server:
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('ui-db') / 'ui.db'}"
        return
    yield create_side_database(test_database, "ui")
    drop_side_database(test_database, "ui")


@pytest.fixture(scope="session")
def ui_server(ui_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    """`python run.py serve` with the sandbox and embedded workers, and an admin user."""
    work = tmp_path_factory.mktemp("ui-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
        **make_env(ui_database_url, work / "data", OUIPOST_PORT=str(port), OUIPOST_PUBLIC_URL=url,
                   OUIPOST_SANDBOX="1", OUIPOST_WEBHOOK_ALLOW_PRIVATE="1"),
    }
    subprocess.run([sys.executable, str(ROOT / "run.py"), "migrate"], env=env, cwd=ROOT, check=True,
                   capture_output=True, timeout=120)
    subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "create-admin", "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD,
         "--name", "Ada Admin"],
        env=env, cwd=ROOT, check=True, capture_output=True, timeout=60,
    )
    log_path = work / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), "serve", "--port", str(port)],
            cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    server = UiServer(url, process, env, log_path)
    try:
        wait_healthy(url, process, log_path=log_path, timeout=60)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ------------------------------------------------------------------------------------------------
# A real browser


@pytest.fixture(scope="module")
def browser(ui_server: UiServer) -> Iterator[Any]:
    """Chromium for one test module. Playwright's sync API keeps an event loop running while it is
    open, so it must not outlive the module: the rest of the suite runs its own loops. (It asks for
    the server first, so that the server's setup runs before that loop exists.)"""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        raise AssertionError("Chromium is required for the browser tests (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(ui_server: UiServer, browser: Any) -> Iterator[Any]:
    """A page in a fresh browser context (no cookies) on the UI server; bounded timeouts."""
    context = browser.new_context(base_url=ui_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as a test artifact (test-artifacts/ui/<name>.png)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Any, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> None:
    """Sign in through the real form and wait for the dashboard (or the page asked for)."""
    page.goto("/ui/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/ui(/.*)?$"))
    assert "/ui/login" not in page.url, page.content()[:2000]


# ------------------------------------------------------------------------------------------------
# Without a browser: the test client of tests/conftest.py


async def make_workspace(
    engine: Any, clock: Any, name: str, *, member: str | None = None, timezone: str | None = None,
) -> dict[str, Any]:
    """A workspace made through the domain (its zone `timezone`, else the default UTC); `member`, a
    user id, is made a member of it so that a non-admin user may see it."""
    from ouipost.identity import workspaces

    async with engine.begin() as conn:
        row = await workspaces.create_workspace(
            conn, name=name, description=None, settings={"timezone": timezone} if timezone else None, now=clock.now(),
        )
        if member:
            await workspaces.add_member(conn, row["id"], member, clock.now())
    return row


def csrf_from(html: str) -> str:
    """The CSRF token a rendered page carries in its forms."""
    match = _CSRF.search(html)
    assert match, "no csrf_token on the page"
    return match.group(1)


async def client_sign_in(client: Any, email: str, password: str) -> str:
    """Sign `client` (an aiohttp TestClient with a cookie jar) in through the form; returns the
    session's CSRF token for later forms."""
    login_page = await client.get("/ui/login")
    token = csrf_from(await login_page.text())
    response = await client.post(
        "/ui/login", data={"csrf_token": token, "email": email, "password": password}, allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    # Signing in starts a new session with a new token: read it from a page of the new session.
    page = await client.get("/ui/profile")
    assert page.status == 200, await page.text()
    return csrf_from(await page.text())
