"""The HTML report: self-contained, and in headless Chromium every image loads and the best
trial's number is on the page (the same trial `dqn-sweep best` picks)."""

import base64
import html
import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sweeps.reporting.report import write_report
from tests.helpers import dqn_sweep

# Appended to a copy of the page: after `load`, writes each image's status where --dump-dom sees it.
PROBE = """<script>
window.addEventListener('load', function () {
  var out = [];
  document.querySelectorAll('img').forEach(function (img) {
    out.push((img.complete ? 'ok' : 'pending') + ':' + img.naturalWidth + 'x' + img.naturalHeight);
  });
  var pre = document.createElement('pre');
  pre.id = 'image-status';
  pre.textContent = out.join(' ') || 'none';
  document.body.appendChild(pre);
});
</script>"""


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("DQN_SWEEP_REQUIRE_CHROMIUM"):
        pytest.fail("headless Chromium is required (DQN_SWEEP_REQUIRE_CHROMIUM) but not installed")
    pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")


def rendered_dom(page: Path) -> str:
    """The DOM of PAGE (with the probe script) after headless Chromium loaded it."""
    probe = page.with_name(f"probe_{page.name}")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [find_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--no-default-browser-check", f"--user-data-dir={profile}",
             "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
            capture_output=True, text=True, timeout=90, check=False,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def image_status(dom: str) -> list[str]:
    found = re.search(r'<pre id="image-status">([^<]*)</pre>', dom)
    assert found, f"the probe did not run; DOM tail: {dom[-1500:]}"
    return [] if found.group(1) == "none" else found.group(1).split()


class Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts, self.skip = [], 0

    def handle_starttag(self, tag, attrs):
        self.skip += tag in ("script", "style")

    def handle_endtag(self, tag):
        self.skip -= tag in ("script", "style")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def visible_text(dom: str) -> str:
    parser = Text()
    parser.feed(dom)
    return re.sub(r"\s+", " ", html.unescape("".join(parser.parts)))


@pytest.fixture(scope="module")
def report(run_dir, tmp_path_factory) -> Path:
    return write_report(run_dir, tmp_path_factory.mktemp("report") / "report.html")


@pytest.mark.timeout(240)
def test_report_is_self_contained_with_non_blank_figures(report, tmp_path, not_blank):
    page = report.read_text(encoding="utf-8")
    sources = re.findall(r"<img[^>]*\ssrc='([^']*)'", page)
    assert len(sources) == 6
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", page), "the report loads something external"
    for i, src in enumerate(sources):
        assert src.startswith("data:image/png;base64,")
        png = tmp_path / f"figure{i}.png"
        png.write_bytes(base64.b64decode(src.split(",", 1)[1]))
        not_blank(png)


@pytest.mark.timeout(240)
def test_report_in_headless_chromium(report, run_dir):
    dom = rendered_dom(report)
    status = image_status(dom)
    assert len(status) == 6, status
    broken = [s for s in status if not s.startswith("ok:") or s.startswith("ok:0x")]
    assert not broken, f"images that did not load: {broken}"

    best = dqn_sweep("best", str(run_dir), check=True)
    number = int(re.search(r"^trial: (\d+)$", best.stdout, re.MULTILINE).group(1))
    text = visible_text(dom)
    assert f"Best trial: {number}, objective" in text, text[:2000]
    assert f"trial {number}, objective" in text  # the YAML header, as `dqn-sweep best` writes it
    assert "dqn-sweep train --config best.yaml" in text


@pytest.mark.timeout(120)
def test_the_probe_sees_broken_images(tmp_path):
    """Negative control: an image that cannot load is reported with naturalWidth 0."""
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><img src='data:image/png;base64,AAAA'></body></html>")
    assert image_status(rendered_dom(page)) == ["ok:0x0"]


@pytest.mark.timeout(240)
def test_report_command(run_dir, tmp_path):
    """`dqn-sweep report RUN_DIR --output FILE`, and a one-line error for a folder that is not a run."""
    out = tmp_path / "r.html"
    dqn_sweep("report", str(run_dir), "--output", str(out), timeout=100, check=True)
    assert out.read_text(encoding="utf-8").count("<img") == 6
    missing = dqn_sweep("report", str(tmp_path / "nope"), timeout=100)
    assert missing.returncode == 2 and "nope" in missing.stderr
