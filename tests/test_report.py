"""report --html / --png (checked in a real headless browser) and detect's CI gate."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def scored_run(digits_run, tmp_path_factory):
    from conftest import Cli

    path = tmp_path_factory.mktemp("report") / "run.h5"
    shutil.copy(digits_run, path)
    Cli()("detect", path, "-k", "5")
    return path


def test_png_figures_are_written(cli, scored_run, tmp_path):
    result = cli.json("report", scored_run, "-k", "8", "--png", tmp_path / "figures")
    names = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert names == ["accuracy.png", "data_map.png", "detectors.png", "ema_loss.png", "suspects.png",
                     "transition.png"]
    for path in (tmp_path / "figures").iterdir():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    assert len(result["png"]) == 6


@pytest.mark.skipif(BROWSER is None, reason="no chromium (make test installs Debian's chromium when run as root)")
def test_html_report_renders_with_its_images_in_a_real_browser(cli, scored_run, tmp_path):
    page = tmp_path / "report.html"
    cli("report", scored_run, "-k", "6", "--html", page, "--png", tmp_path / "png")
    text = page.read_text()
    assert text.count("data:image/png;base64,") == 6 and "src='http" not in text  # self-contained
    dom = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert 'data-images-loaded="6/6"' in dom  # every embedded figure decoded in the browser
    assert "Top 6 suspects by learned" in dom and "Estimated noise" in dom and "digits/" in dom
    shot = tmp_path / "shot.png"
    subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1100,4000",
                    f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120)
    assert shot.stat().st_size > 50_000  # a page with figures, not a blank one


@pytest.mark.slow
def test_a_run_on_feature_vectors_draws_every_figure_but_the_gallery_and_needs_no_note(cli, tmp_path):
    cli("synth", "-d", "blobs", "-n", "uniform", "-r", "0.2", "-o", tmp_path / "l.h5")
    cli("train", "-l", tmp_path / "l.h5", "-m", "mlp", "-e", "3", "-q", "-o", tmp_path / "r.h5")
    cli("detect", tmp_path / "r.h5", "-d", "loss", "-k", "3")
    result = cli.json("report", tmp_path / "r.h5", "--png", tmp_path / "png")
    assert "suspects.png" not in {p.name for p in (tmp_path / "png").iterdir()}  # feature vectors: no images
    assert {"accuracy.png", "ema_loss.png", "detectors.png"} <= {p.name for p in (tmp_path / "png").iterdir()}
    assert result["notes"] == []


def test_report_without_loadable_data_says_why_there_is_no_gallery(cli, tmp_path):
    """Images whose file is gone since training: the report says so, names the file, and draws the rest."""
    rng = np.random.default_rng(0)
    labels = np.arange(120) % 3
    images = (rng.random((120, 8, 8)) * 60 + labels[:, None, None] * 60).astype(np.uint8)
    np.savez(tmp_path / "images.npz", x=images, y=labels)
    cli("synth", "-d", "npz", "--data-root", tmp_path / "images.npz", "-r", "0.1", "-o", tmp_path / "l.h5")
    cli("train", "-l", tmp_path / "l.h5", "-e", "2", "-q", "-o", tmp_path / "r.h5")
    cli("detect", tmp_path / "r.h5", "-d", "loss", "-k", "3")
    (tmp_path / "images.npz").unlink()
    result = cli.json("report", tmp_path / "r.h5", "--png", tmp_path / "png")
    drawn = {p.name for p in (tmp_path / "png").iterdir()}
    assert "suspects.png" not in drawn and "accuracy.png" in drawn
    assert len(result["notes"]) == 1
    assert result["notes"][0].startswith("no suspect gallery:") and "images.npz" in result["notes"][0]


def test_detect_gate_fails_the_job_with_code_3_when_noise_is_above_the_limit(cli, scored_run):
    failed = cli("detect", scored_run, "-d", "loss", "--no-save", "--fail-above", "0.1", ok=False)
    assert failed.exit_code == 3 and "is above --fail-above 10.0%" in failed.stderr
    assert "detectors:" in failed.stdout  # the tables still print before the verdict
    passed = cli.json("detect", scored_run, "-d", "loss", "--no-save", "--fail-above", "0.9")
    assert passed["gate"]["passed"] and 0.1 < passed["gate"]["estimated_rate"] < 0.9
    counted = cli("detect", scored_run, "-d", "learned", "--no-save", "--fail-count", "10", "--fail-score", "0.5",
                  ok=False)
    assert counted.exit_code == 3 and "more than --fail-count 10" in counted.stderr
    assert "go together" in cli.error("detect", scored_run, "--fail-count", "3")


def test_a_recipe_step_can_gate_the_job(cli, scored_run, tmp_path):
    recipe = tmp_path / "gate.yaml"
    recipe.write_text(f"steps:\n  - detect: {{run: {scored_run}, detector: [loss], save: false, fail_above: 0.05}}\n")
    failed = cli("run", recipe, ok=False)
    assert failed.exit_code == 3 and "step 1 (detect)" in failed.stderr and "--fail-above" in failed.stderr


def test_class_names_no_installed_font_draws_are_figured_by_index(cli, tmp_path, monkeypatch):
    """matplotlib's own fonts draw Chinese class names as boxes: the figures number the classes and
    the page names each number; where an installed font has the glyphs, it draws them."""
    import matplotlib
    from matplotlib import font_manager

    from noisyctl.report import figures

    rng = np.random.default_rng(0)
    labels = np.arange(120) % 3
    images = (rng.random((120, 8, 8)) * 60 + labels[:, None, None] * 60).astype(np.uint8)
    np.savez(tmp_path / "animals.npz", x=images, y=labels, class_names=np.array(["猫", "狗", "鸟"]))
    cli("synth", "-d", "npz", "--data-root", tmp_path / "animals.npz", "-r", "0.1", "-o", tmp_path / "l.h5")
    cli("train", "-l", tmp_path / "l.h5", "-e", "2", "-q", "-o", tmp_path / "r.h5")
    cli("detect", tmp_path / "r.h5", "-d", "loss", "-k", "3")
    with matplotlib.rc_context():
        # a machine with no fonts but matplotlib's own (DejaVu, STIX, and Last Resort: a box for every character)
        monkeypatch.setattr(font_manager.fontManager, "ttflist", [entry for entry in font_manager.fontManager.ttflist
                                                                  if "mpl-data" in Path(entry.fname).parts])
        result = cli.json("report", tmp_path / "r.h5", "--html", tmp_path / "report.html")
    note = "the figures label classes by index: 0 猫, 1 狗, 2 鸟"
    assert any(note in n for n in result["notes"]) and note in (tmp_path / "report.html").read_text(encoding="utf-8")
    monkeypatch.undo()
    assert figures.drawable_class_names(["cat", "dog"]) == (["cat", "dog"], None)
    default = font_manager.findfont(font_manager.FontProperties(family=["sans-serif"]))
    real_charmap = figures._charmap
    monkeypatch.setattr(figures, "_charmap", lambda path: real_charmap(path) - {ord("é")} if path == default
                        else real_charmap(path))  # as if the default font lacked é, which others have
    with matplotlib.rc_context():
        assert figures.drawable_class_names(["café", "tea"]) == (["café", "tea"], None)
        assert len(matplotlib.rcParams["font.family"]) == 2  # the font that has é, as the fallback
