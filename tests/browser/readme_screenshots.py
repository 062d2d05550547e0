"""The README's screenshots, taken from a running platform with the demo caseload (``make up``).

    .venv/bin/python -m tests.browser.readme_screenshots [--workspace http://127.0.0.1:8000]

Signs in as the demo care manager cm-riverside-ana, and writes ``docs/screenshots/my-day.png`` and
``docs/screenshots/patient.png`` (the first patient of her caseload).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from playwright.async_api import async_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workspace", default="http://127.0.0.1:8000")
    parser.add_argument("--as", dest="person", default="cm-riverside-ana")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        context = await browser.new_context(base_url=args.workspace, viewport={"width": 1200, "height": 900})
        page = await context.new_page()
        await page.goto("/signin")
        await page.get_by_role("button", name=f"Sign in as {args.person}", exact=True).click()
        await page.wait_for_url(lambda url: "/signin" not in url)
        await page.screenshot(path=str(OUT / "my-day.png"), full_page=True)
        await page.locator("section[aria-labelledby='caseload-heading'] tbody a").first.click()
        await page.wait_for_url("**/patients/*")
        await page.set_viewport_size({"width": 1200, "height": 1700})  # the top of a long page
        await page.screenshot(path=str(OUT / "patient.png"))
        await browser.close()
    print(f"wrote {OUT / 'my-day.png'} and {OUT / 'patient.png'}")


if __name__ == "__main__":
    asyncio.run(main())
