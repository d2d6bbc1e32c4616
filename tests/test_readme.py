"""The README's tour runs as written, in order, from the repository root (with fewer epochs)."""

import re
import shlex
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Exit codes a tour line is meant to end with: the CI gate fails a 20%-noise run on purpose.
EXPECTED_EXIT = {"--fail-above": 3}


def tour_commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"## A tour.*?```bash\n(.*?)```", text, re.S).group(1)
    return [shlex.split(line.split("  #")[0]) for line in block.splitlines() if line.startswith("noisyctl ")]


def test_the_tour_names_the_commands_it_shows():
    commands = {argv[1] for argv in tour_commands()}
    assert {"synth", "train", "detect", "prune", "correct", "import-review", "report", "export", "train-detector",
            "run", "plugins"} <= commands


@pytest.mark.slow
def test_the_readme_tour_runs_as_written(cli, tmp_path, monkeypatch):
    shutil.copytree(REPO / "recipes", tmp_path / "recipes")  # `run recipes/...` from the repository root
    monkeypatch.chdir(tmp_path)
    for argv in tour_commands():
        argv = argv[1:]
        argv = [("3" if previous in ("-e", "--epochs") else a) for previous, a in zip([""] + argv, argv)]
        if argv[0] == "run":  # the quickstart recipe's 30 epochs, shortened the same way
            recipe = tmp_path / argv[1]
            recipe.write_text(recipe.read_text().replace("epochs: 30", "epochs: 3"))
        expected = next((code for flag, code in EXPECTED_EXIT.items() if flag in argv), 0)
        result = cli(*argv, ok=False)
        assert result.exit_code == expected, (argv, result.stdout[-2000:], result.stderr[-2000:])
    assert (tmp_path / "report.html").stat().st_size > 10_000
    assert (tmp_path / "reviewed.h5").exists() and (tmp_path / "mine.safetensors").exists()
    assert len((tmp_path / "cleaned.csv").read_text().splitlines()) == 1 + 1797 - 359  # synth's test split is not in it
    assert (tmp_path / "runs" / "quickstart" / "run.h5").exists()
    compared = cli.json("report", "run.h5", "--compare", "pruned-run.h5", "--compare", "rw.h5")["comparison"]
    assert len(compared) == 3 and all(row["test_accuracy"] is not None for row in compared)
