"""A headless Chromium driven by Selenium, and the app served in-process on a real port.

The browser is Debian's `chromium` with its `chromium-driver` (apt; `.ci/run` installs them):
nothing is downloaded at test time. The app runs under uvicorn in a thread with a scripted
backend, so a browser test costs a page load, not a Claude CLI start.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from adapters.protocol import ChatBackend
from proxy.app import create_app
from proxy.settings import Settings
from tests.support.server import REPO, free_port

CHROMIUM = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = REPO / ".cache" / "screenshots"


def chromium_binary() -> str:
    for path in CHROMIUM:
        if Path(path).exists():
            return path
    found = shutil.which("chromium")
    if found is None:
        raise RuntimeError("Chromium is not installed: apt-get install chromium chromium-driver (see README)")
    return found


def headless_chromium(width: int = 1280, height: int = 1600) -> webdriver.Chrome:
    """A fresh headless Chromium that keeps its console log for `console_errors`."""
    options = webdriver.ChromeOptions()
    options.binary_location = chromium_binary()
    for flag in (
        "--headless=new",
        "--no-sandbox",  # tests may run as root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-extensions",
        "--no-first-run",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


def console_errors(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    """The console's errors since the last call (reading the log empties it)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


class InProcessServer:
    """`create_app(settings, backend=...)` under uvicorn on a free port, in a thread."""

    def __init__(self, settings: Settings, backend: ChatBackend) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(settings, backend=backend), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="dashboard-server", daemon=True)

    def start(self) -> InProcessServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the in-process server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
