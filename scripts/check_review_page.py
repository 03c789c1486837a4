"""Check a report page as a reader sees it: render it in headless Chromium and inspect it.

    .venv/bin/python scripts/check_review_page.py /tmp/review-out/review.html [--screenshot shot.png]
    .venv/bin/python scripts/check_review_page.py /tmp/run-out/report.html      # a run's report
    .venv/bin/python scripts/check_review_page.py /tmp/sweep-out/frontier.html  # a sweep's frontier page

The page's kind is read off the page. For a run's report: its sections
(overall, changes, forest, diagnostics), at least three tables and three
decoded plots; for a frontier page: plotly drew the chart and both frontier
tables are there. For a review page:

Two checks, both must pass (exit 0; 1 otherwise, listing what is missing):

- the DOM after Chromium has loaded the page (`--dump-dom`): the verdict
  banner, the section of each part of the report (on a page of several
  candidates: the side-by-side table, each candidate's sections, and the
  shared calibration, method and provenance), at least five tables, and
  the plots as inline `data:image/png` images that decoded (Chromium reports
  their natural size through a tiny script run after load); nothing is
  fetched from the network (`--disable-background-networking` and no external
  URL in the page).
- a full-page screenshot (1280 px wide) that is not blank, for a human to look at.

Needs `chromium` (apt-get install -y chromium). Not part of the test suite:
CI machines may not have a browser; tests check the HTML structurally instead.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SECTIONS = ("guardrails", "overall", "forest", "movers", "support", "calibration", "method", "provenance")
CANDIDATE_PARTS = ("guardrails", "overall", "forest", "movers", "support")  # per candidate, on a side-by-side page
SHARED = ("candidates", "calibration", "method", "provenance")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                  "--disable-background-networking", "--disable-extensions", "--no-first-run")
PROBE = """<script>window.addEventListener('load', () => {
  const sizes = [...document.images].map(i => i.naturalWidth + 'x' + i.naturalHeight).join(',');
  document.body.setAttribute('data-image-sizes', sizes);
});</script>"""


def chromium() -> str:
    """The Chromium executable, or exit with how to install it."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit("chromium not found: apt-get update && apt-get install -y chromium")


def rendered_dom(browser: str, page: Path) -> str:
    """The DOM after load of a copy of the page with a probe that records each image's decoded size."""
    with tempfile.TemporaryDirectory() as tmp:
        probed = Path(tmp) / "probed.html"
        probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
        done = subprocess.run([browser, *CHROMIUM_FLAGS, "--virtual-time-budget=5000", "--dump-dom",
                               probed.as_uri()], capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def screenshot(browser: str, page: Path, target: Path, height: int) -> None:
    """A 1280-px-wide screenshot of the page (as it is, without the probe)."""
    subprocess.run([browser, *CHROMIUM_FLAGS, f"--screenshot={target}", f"--window-size=1280,{height}",
                    page.resolve().as_uri()], capture_output=True, timeout=120, check=True)


RUN_SECTIONS = ("overall", "changes", "forest", "diagnostics")


def page_kind(dom: str) -> str:
    """review (one or several candidates), run (report.html) or frontier (a sweep's frontier.html)."""
    if 'class="verdict verdict-summary"' in dom:
        return "run"
    if "Frontier points, segment" in dom:
        return "frontier"
    return "review"


def run_problems(dom: str) -> list[str]:
    """report.html of `run`: its sections, tables and decoded plots."""
    found = [f"no section '{s}'" for s in RUN_SECTIONS if f'<section id="{s}">' not in dom]
    if dom.count("<table") < 3:
        found.append(f"only {dom.count('<table')} tables (expected the overall, changes and diagnostics tables)")
    sizes = re.search(r'data-image-sizes="([^"]*)"', dom)
    decoded = [s for s in (sizes.group(1).split(",") if sizes and sizes.group(1) else []) if not s.startswith("0x")]
    if len(decoded) < 3:
        found.append(f"only {len(decoded)} plots decoded (expected at least the three forest plots of a candidate)")
    return found


def frontier_problems(dom: str) -> list[str]:
    """frontier.html of `sweep`: plotly drew the chart (an svg per panel) and the frontier table is there."""
    found = []
    if dom.count('class="main-svg"') < 1:
        found.append("plotly drew no chart")
    if dom.count("<table") < 2:
        found.append("no table of frontier points for both frontiers")
    return found


def problems_in(dom: str, source: str) -> list[str]:
    """What a reader would miss on the rendered page."""
    kind = page_kind(dom)
    if kind == "run":
        return run_problems(dom) + (["the page references the network"]
                                    if re.search(r'(src|href)="https?://', source) else [])
    if kind == "frontier":  # plotly.js is inlined and mentions URLs in its code: look for what would load one
        external = re.search(r"<script[^>]*\bsrc\s*=|<link\b", source, re.IGNORECASE)
        return frontier_problems(dom) + (["the page loads a script or stylesheet"] if external else [])
    found = []
    verdict = re.search(r'<div id="verdict" class="verdict verdict-(\w+)">\s*<div class="label">([^<]+)<', dom)
    if not verdict:
        found.append("no verdict banner")
    candidates = len(re.findall(r'<section id="candidate-\d+">', dom))
    if '<section id="candidates">' in dom:  # several candidates side by side: shared parts, then each candidate's
        found += [f"no section '{s}'" for s in SHARED if f'<section id="{s}">' not in dom]
        found += [f"candidate {rank}: no section '{part}'" for rank in range(1, candidates + 1)
                  for part in CANDIDATE_PARTS if not re.search(rf'<section id="c{rank}_[^"]*_{part}">', dom)]
        if not candidates:
            found.append("a candidates table but no candidate's section")
    else:
        found += [f"no section '{s}'" for s in SECTIONS if f'<section id="{s}">' not in dom]
    tables = dom.count("<table")
    if tables < 5:
        found.append(f"only {tables} tables (expected at least 5)")
    sizes = re.search(r'data-image-sizes="([^"]*)"', dom)
    decoded = [s for s in (sizes.group(1).split(",") if sizes and sizes.group(1) else []) if not s.startswith("0x")]
    expected = 3 * max(candidates, 1) + 1
    if len(decoded) < expected:
        found.append(f"only {len(decoded)} plots decoded (expected {expected}: three forest plots per candidate and "
                     "calibration)")
    if re.search(r'(src|href)="https?://', source):
        found.append("the page references the network")
    return found


def blank(png: Path) -> bool:
    """Whether a screenshot is (nearly) one colour: a page that did not render."""
    data = png.read_bytes()
    return len(data) < 20_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("page", type=Path, help="review.html, report.html or frontier.html")
    parser.add_argument("--screenshot", type=Path, default=None, help="where to write the PNG (default: beside the page)")
    parser.add_argument("--height", type=int, default=4000, help="window height of the screenshot in pixels")
    args = parser.parse_args()
    browser = chromium()
    target = args.screenshot or args.page.with_name("review-screenshot.png")
    dom = rendered_dom(browser, args.page)
    problems = problems_in(dom, args.page.read_text())
    screenshot(browser, args.page, target, args.height)
    if blank(target):
        problems.append(f"screenshot {target} looks blank")
    verdict = re.search(r'<div class="label">([^<]+)<', dom)
    sizes = re.search(r'data-image-sizes="([^"]*)"', dom)
    print(f"verdict: {verdict.group(1) if verdict else '?'}; tables: {dom.count('<table')}; "
          f"decoded images (width x height): {sizes.group(1) if sizes else '?'}")
    print(f"screenshot: {target}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
