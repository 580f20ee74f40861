import base64
import html
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from textgen.checkpoint import load_checkpoint
from textgen.cli import main
from textgen.config import RNNConfig, RunConfig
from textgen.corpus import load_corpus
from textgen.errors import CheckpointError
from textgen.gradients import check_window
from textgen.models import init_params
from textgen.reports import plot_runs, write_report
from textgen.run import start_run
from textgen.trainer import TrainConfig
from textgen.vocab import CharVocab

PROJECT = Path(__file__).resolve().parent.parent
SAMPLE_BOOK = PROJECT / "corpora" / "sample_book.txt"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHROMIUM = Path("/usr/bin/chromium")
ALWAYS_SECTIONS = ["Loss curves", "Samples during training", "Passage from the best model", "Corpus", "Configuration"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two small real runs: one from the command line, one through the library with a gradient-check table."""
    root = tmp_path_factory.mktemp("report-runs")
    book = root / "book"
    assert main(["train", "--corpus", str(SAMPLE_BOOK), "--updates", "200", "--sample-every", "100",
                 "--log-every", "10", "--eval-every", "20", "--hidden", "16", "--no-progress", "--seed", "1", "--out", str(book)]) == 0
    corpus = load_corpus([str(SAMPLE_BOOK)], val_fraction=0.05)
    vocab = CharVocab.from_texts([corpus.text])
    window = vocab.encode(corpus.text[:26])
    rng = np.random.default_rng(0)
    params = init_params(RNNConfig(hidden=8), vocab.size, rng)
    errors = check_window(params, window[:-1], window[1:], max_entries=20, rng=rng)
    checked = root / "checked"
    config = TrainConfig(updates=100, sample_every=50, log_every=10, eval_every=20, seed=2)
    start_run([str(SAMPLE_BOOK)], RNNConfig(hidden=8), config, RunConfig(out=checked, passage_length=300),
              progress=False, extra={"gradcheck": errors})
    return {"book": book, "checked": checked}


@pytest.fixture(scope="module")
def reports(runs):
    return {name: write_report(folder) for name, folder in runs.items()}


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def page_of(reports, name: str) -> str:
    return reports[name][0].read_text(encoding="utf-8")


def markdown_of(reports, name: str) -> str:
    return reports[name][1].read_text(encoding="utf-8")


def header_of(page: str) -> str:
    return page.split("<nav>")[0]


def test_write_report_writes_html_markdown_and_the_figure_into_the_run(runs, reports):
    for name, folder in runs.items():
        assert reports[name] == (folder / "report.html", folder / "report.md")
        assert reports[name][0].stat().st_size > 10_000 and reports[name][1].stat().st_size > 1_000
        assert (folder / "report_loss.png").read_bytes().startswith(PNG_SIGNATURE)
        assert not list(folder.glob(".*.tmp"))


def test_the_html_loads_nothing_from_outside(reports):
    for name in reports:
        page = page_of(reports, name)
        references = re.findall(r"""\b(?:src|href)\s*=\s*["']([^"']*)""", page)
        assert references and all(ref.startswith(("data:", "#")) for ref in references)
        assert not re.search(r"https?://", page)
        assert "<script" not in page and "<link" not in page and "@import" not in page and "url(" not in page


def test_every_image_is_an_embedded_png_of_the_loss_figure(runs, reports):
    for name, folder in runs.items():
        sources = re.findall(r'<img\b[^>]*\bsrc="([^"]*)"', page_of(reports, name))
        assert len(sources) == 1
        prefix = "data:image/png;base64,"
        assert sources[0].startswith(prefix)
        data = base64.b64decode(sources[0][len(prefix):], validate=True)
        assert data.startswith(PNG_SIGNATURE) and data == (folder / "report_loss.png").read_bytes()


def test_the_html_shows_every_sample_escaped_and_the_passage(runs, reports):
    for name, folder in runs.items():
        page = page_of(reports, name)
        samples = rows_of(folder / "samples.jsonl")
        assert len(samples) >= 2
        for sample in samples:
            assert html.escape(sample["text"]) in page
            assert f"<td class=\"num\">{sample['update']:,}</td>" in page
        passage = (folder / "best_passage.txt").read_text(encoding="utf-8")
        assert passage and html.escape(passage) in page


def test_the_headline_numbers_are_the_ones_in_metrics_jsonl(runs, reports):
    for name, folder in runs.items():
        metrics = rows_of(folder / "metrics.jsonl")
        final_smooth = metrics[-1]["smooth_loss"]
        evaluations = [(row["val_loss"], row["update"]) for row in metrics if "val_loss" in row]
        best_nats, best_update = min(evaluations)
        speeds = sorted(row["chars_per_sec"] for row in metrics)
        middle = len(speeds) // 2
        median = speeds[middle] if len(speeds) % 2 else (speeds[middle - 1] + speeds[middle]) / 2
        expected = [f"{final_smooth:.3f}", f"{best_nats / math.log(2):.4f}",
                    f"best, in bits/char ({best_nats:.4f} nats/char)", f"{median:,.0f}", f"at update {best_update:,}"]
        header = header_of(page_of(reports, name))
        markdown = markdown_of(reports, name)
        for text in expected:
            assert text in header and text in markdown, text


def test_the_best_model_and_its_criterion_are_named(runs, reports):
    for name, folder in runs.items():
        meta = load_checkpoint(folder / "best.npz").meta
        assert meta["best_by"] == "val_loss"
        sentence = (f"chosen by the lowest validation loss: {meta['best_loss'] / math.log(2):.4f} bits per "
                    f"character ({meta['best_loss']:.4f} nats/char), at update {meta['update']:,}.")
        assert sentence in page_of(reports, name) and sentence in markdown_of(reports, name)


def test_the_markdown_has_the_same_sections_and_content_as_the_html(runs, reports):
    for name, folder in runs.items():
        page, markdown = page_of(reports, name), markdown_of(reports, name)
        html_sections = re.findall(r"<h2>(.*?)</h2>", page)
        assert html_sections == re.findall(r"^## (.*)$", markdown, flags=re.MULTILINE)
        assert set(ALWAYS_SECTIONS) <= set(html_sections)
        assert ("Gradient check" in html_sections) == (name == "checked")
        assert "](report_loss.png)" in markdown and (folder / "report_loss.png").exists()
        for sample in rows_of(folder / "samples.jsonl"):
            assert f"\n{sample['text']}\n```" in markdown
        assert (folder / "best_passage.txt").read_text(encoding="utf-8") in markdown


def test_the_gradient_check_table_shows_every_parameter(runs, reports):
    errors = json.loads((runs["checked"] / "config.json").read_text())["gradcheck"]
    assert sorted(errors) == ["U", "V", "W", "b", "c"]
    page, markdown = page_of(reports, "checked"), markdown_of(reports, "checked")
    for parameter, error in errors.items():
        assert f"<td><code>{parameter}</code></td><td class=\"num\">{error:.2e}</td>" in page
        assert f"| `{parameter}` | {error:.2e} |" in markdown


def test_the_corpus_and_every_vocabulary_character_are_shown(runs, reports):
    config = json.loads((runs["book"] / "config.json").read_text())
    chars = json.loads((runs["book"] / "vocab.json").read_text())["chars"]
    page = page_of(reports, "book")
    (source,) = config["corpus"]["sources"]
    assert html.escape(source["spec"]) in page and source["sha256"][:12] in page
    assert f"{source['characters']:,}" in page and f"{source['val_characters']:,}" in page
    chips = re.findall(r'<span class="ch[^"]*" title="U\+([0-9A-F]{4})[^"]*">(.*?)</span>', page)
    assert [chr(int(code, 16)) for code, _ in chips] == chars
    shown = dict(zip(chars, (text for _, text in chips)))
    assert shown["\n"] == "\\n" and shown[" "] == "␣" and shown["a"] == "a" and shown["'"] == "&#x27;"


def test_plot_runs_overlays_two_runs_in_one_png(runs, tmp_path):
    out = plot_runs([runs["book"], runs["checked"]], tmp_path / "compare.png")
    assert out == tmp_path / "compare.png"
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 5000
    assert [p.name for p in tmp_path.iterdir()] == ["compare.png"]


def test_a_folder_that_is_not_a_run_gives_a_one_line_checkpoint_error(runs, tmp_path):
    (tmp_path / "notes.txt").write_text("not a run")
    for call in (lambda: write_report(tmp_path), lambda: write_report(tmp_path / "missing"),
                 lambda: plot_runs([runs["book"], tmp_path], tmp_path / "out.png")):
        with pytest.raises(CheckpointError) as caught:
            call()
        message = str(caught.value)
        assert "\n" not in message and ("config.json" in message or "missing: no such run folder" in message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_plot_runs_refuses_a_run_without_metrics(runs, tmp_path):
    shutil.copy(runs["book"] / "config.json", tmp_path / "config.json")
    with pytest.raises(CheckpointError, match="metrics"):
        plot_runs([tmp_path], tmp_path / "out.png")


def test_an_unfinished_run_still_gets_a_report_that_says_so(runs, tmp_path):
    for name in ("config.json", "vocab.json"):
        shutil.copy(runs["book"] / name, tmp_path / name)
    page_path, markdown_path = write_report(tmp_path)
    page = page_path.read_text(encoding="utf-8")
    assert "No metrics have been logged yet" in page and "<img" not in page
    assert "this run has not finished" in page and "this run has not finished" in markdown_path.read_text()
    assert not (tmp_path / "report_loss.png").exists()


def chromium(*arguments: str, profile: Path) -> subprocess.CompletedProcess:
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_a_headless_browser_renders_the_report_with_its_figure(runs, reports, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium")
    import matplotlib.image

    url = reports["book"][0].resolve().as_uri()
    shot = tmp_path / "shot.png"
    result = chromium(f"--screenshot={shot}", "--window-size=1200,3000", url, profile=tmp_path / "profile-shot")
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    pixels = matplotlib.image.imread(shot)[:, :, :3]
    assert pixels.shape[:2] == (3000, 1200) and pixels.std() > 0.05
    # The figure draws validation loss in matplotlib's orange (255, 127, 14), a colour nothing else on the page
    # uses: if the embedded image failed to load, the browser would show its alt text and no orange at all.
    orange = np.abs(pixels - np.array([255, 127, 14]) / 255).max(axis=2) < 0.12
    assert orange.sum() > 200

    result = chromium("--dump-dom", url, profile=tmp_path / "profile-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    assert "<h2>Samples during training</h2>" in dom and 'src="data:image/png;base64,' in dom
    for sample in rows_of(runs["book"] / "samples.jsonl"):
        assert html.escape(sample["text"], quote=False) in dom


def test_plot_writes_through_a_link_and_refuses_what_is_not_a_png_file(runs, tmp_path):
    from textgen.errors import ConfigError, OutputError

    (tmp_path / "link.png").symlink_to(tmp_path / "real.png")
    plot_runs([runs["book"]], tmp_path / "link.png")
    assert (tmp_path / "link.png").is_symlink() and (tmp_path / "real.png").read_bytes().startswith(PNG_SIGNATURE)
    with pytest.raises(ConfigError, match="give a name ending in .png"):
        plot_runs([runs["book"]], tmp_path / "figure.jpg")
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(OutputError, match="exists and is not a regular file"):
        plot_runs([runs["book"]], tmp_path / "folder.png")


def test_both_reports_say_what_the_end_of_document_marker_is_where_the_vocabulary_has_it(tmp_path):
    folder = tmp_path / "tweets"
    assert main(["train", "--corpus", str(PROJECT / "corpora" / "sample_tweets.json"), "--updates", "20",
                 "--hidden", "8", "--no-progress", "--seed", "1", "--out", str(folder)]) == 0
    html_path, md_path = write_report(folder)
    markdown = md_path.read_text(encoding="utf-8")
    vocabulary = markdown.split("### Vocabulary")[1].split("## ")[0]
    assert vocabulary.count("\u2403") == 2 and "\u2403 the end-of-document marker (U+2403)" in vocabulary
    assert "the end-of-document marker U+2403" in html_path.read_text(encoding="utf-8")
