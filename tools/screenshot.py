"""Draw the README's picture of the explainer: the page's "Look inside", in headless Chromium.

    .venv/bin/python tools/screenshot.py                       # the bundled model -> docs/img/explainer.png
    .venv/bin/python tools/screenshot.py --checkpoint runs/first --out /tmp/mine.png

It serves the model on a free loopback port, types a prompt, takes one step, pins a
character of the prompt and at the middle of the learning curves, and photographs the section.
Needs Chromium (Debian's `chromium`) and Playwright (in the test environment).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "Once upon a time, there was a little girl named Lily. She liked to "


def main() -> None:
    import uvicorn
    from playwright.sync_api import sync_playwright

    from minigpt.serve import create_app

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="bundled")
    p.add_argument("--out", default=str(ROOT / "docs" / "img" / "explainer.png"))
    p.add_argument("--width", type=int, default=1000)
    args = p.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("needs Chromium: apt-get install chromium")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(args.checkpoint, max_batch=1), host="127.0.0.1",
                                           port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox",
                                                                          "--disable-gpu"])
            page = browser.new_page(viewport={"width": args.width, "height": 900}, device_scale_factor=1)
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#next-chart g.bar")
            page.fill("#seed", "3")
            page.fill("#prompt", PROMPT)
            page.dispatch_event("#prompt", "input")
            page.wait_for_selector(f"#tokens .tok[data-index='{len(PROMPT)}']")
            page.click("#one-step")
            page.wait_for_selector("#step-log li")
            page.wait_for_timeout(800)
            page.click(f"#tokens .tok[data-index='{PROMPT.index('She') + 1}']")  # pinned: "S" reads
            chart = page.locator("#loss-chart")
            chart.scroll_into_view_if_needed()
            box = chart.bounding_box()
            page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2)
            page.wait_for_timeout(200)
            page.locator("#inside").screenshot(path=args.out)
            browser.close()
    finally:
        server.should_exit = True
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
