"""The built wheel, not the checkout: `pip wheel .`, installed in a fresh venv, then `ouipost migrate`
and `ouipost serve` from a directory that knows nothing of the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import pytest

from tests.servers import free_port
from tests.test_cli import ROOT

# Builds a wheel and runs it in processes: not in the quick loop (`pytest -m "not slow"`).
pytestmark = pytest.mark.slow

# What a wheel is built from: the checkout less what git ignores (and its own venv).
_NOT_SOURCES = shutil.ignore_patterns(
    ".venv", ".git", "__pycache__", "*.egg-info", "data", "build", "dist", "test-artifacts", ".*cache",
    ".schemathesis",
)


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180
         ) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result


def _installed_wheel(tmp_path: Path) -> Path:
    """A venv holding only the built wheel; the dependencies come from this venv's site-packages,
    added as a plain path (its .pth files, such as the editable install's finder, are not read)."""
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCES)
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(source), "-w", tmp_path / "wheels", cwd=tmp_path)
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    site = _run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp_path).stdout.strip()
    Path(site, "ouipost-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    wheel = next((tmp_path / "wheels").glob("ouipost-*.whl"))
    _run(python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel, cwd=tmp_path)
    return venv


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, resp.read().decode()


def test_the_built_wheel_migrates_and_serves_from_anywhere(tmp_path: Path) -> None:
    venv = _installed_wheel(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}", "HOME": str(tmp_path)}
    located = _run(venv / "bin" / "python", "-c", "import ouipost; print(ouipost.__file__)", cwd=elsewhere, env=env)
    assert located.stdout.startswith(str(venv)), "the test must run the installed package, not the checkout"

    migrated = _run(venv / "bin" / "ouipost", "migrate", cwd=elsewhere, env=env)
    assert migrated.stdout.startswith("empty database: applied "), migrated.stdout

    port = free_port()
    server = subprocess.Popen(
        [str(venv / "bin" / "ouipost"), "serve", "--port", str(port)], cwd=elsewhere, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.communicate()[0]
            try:
                status, _ = _get(f"{base}/healthz")
                break
            except OSError:
                assert time.monotonic() < deadline, "the installed server did not answer /healthz"
                time.sleep(0.3)
        assert status == 200
        status, page = _get(f"{base}/ui/login")  # a template of the package
        assert status == 200 and "<form" in page
        status, css = _get(f"{base}/ui/static/ui.css")  # a static file of the package
        assert status == 200 and css.strip()
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert "Traceback" not in output, output
    assert (elsewhere / "data" / "ouipost.db").exists()
