"""Debian's Chromium driven by Selenium through Debian's chromedriver, for the web tests.

Nothing is downloaded but Debian's packages: when `chromium` or `chromium-driver` is missing
and the tests run as root (CI containers), ensure_installed() installs them with apt-get
(as .ci/run does before the tests), serialized by a file lock so two pytest-xdist workers
do not fight over dpkg's; else the test is skipped with the reason. Selenium is handed both
paths, so its own driver manager never looks for (or fetches) a browser.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile

INSTALL_TIMEOUT = 900
PACKAGES = ["chromium", "chromium-driver"]


def paths() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    driver = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)
    return (browser, driver) if browser and driver else None


def ensure_installed() -> tuple[tuple[str, str] | None, str]:
    """((chromium, chromedriver), "") or (None, why not)."""
    found = paths()
    if found:
        return found, ""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, "chromium and chromium-driver are not installed (apt-get install chromium chromium-driver, as root)"
    with open(os.path.join(tempfile.gettempdir(), "loyalty-chromium-install.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if paths():
            return paths(), ""
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        outputs = []
        for command in (["apt-get", "install", "-y", *PACKAGES], ["apt-get", "update"], ["apt-get", "install", "-y", *PACKAGES]):
            done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, env=env)
            outputs.append(done.stdout[-500:] + done.stderr[-500:])
            if command[1] == "install" and done.returncode == 0 and paths():
                return paths(), ""
    return None, "apt-get could not install chromium: " + " | ".join(outputs)[-800:]


def start(browser: str, driver: str, width: int = 1280, height: int = 900):
    """A headless Chromium session (selenium.webdriver.Chrome)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-extensions",
        "--no-first-run",
        f"--window-size={width},{height}",
        "--hide-scrollbars",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))
