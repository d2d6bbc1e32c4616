import csv
import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "recipes" / "quickstart.yaml"


@pytest.mark.slow
def test_quickstart_recipe_finds_pairflip_noise_on_digits(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the recipe writes under runs/ of the working folder
    result = cli.json("run", QUICKSTART)
    commands = [s["command"] for s in result["steps"]]
    assert commands == ["synth", "train", "detect"]
    synth, _, detect = (s["result"] for s in result["steps"])
    assert synth["flipped"] == round(0.2 * 1797)
    detect_maps = {name: d["metrics"]["map"] for name, d in detect["detectors"].items()}
    assert set(detect_maps) == {"learned", "aum", "loss", "ema-loss"}
    assert detect_maps["learned"] >= max(detect_maps.values()) - 0.005
    assert max(detect_maps.values()) >= 0.9, detect_maps
    assert len(detect["top"]) == 10
    assert {"id", "given", "true", "suggested", "score"} <= set(detect["top"][0])
    assert sum(row["is_noisy"] for row in detect["top"]) >= 8
    with open(tmp_path / "runs/quickstart/scores.csv") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["sample_id", "given_label", "learned", "loss", "ema-loss", "aum"]
    assert len(rows) == 1798
    with h5py.File(tmp_path / "runs/quickstart/run.h5") as h5:  # detect stored its scores and provenance
        assert set(h5["scores"]) == {"learned", "aum", "loss", "ema-loss"}
        recipe = json.loads(h5.attrs["recipe"])
        assert recipe["step"] == 2 and recipe["command"] == "train"


def test_pipeline_step_by_step_with_tables(cli, tmp_path):
    labels, run = tmp_path / "labels.h5", tmp_path / "run.h5"
    out = cli("synth", "-n", "pairflip", "-r", "0.2", "-o", labels).stdout
    assert "359" in out
    out = cli("train", "-l", labels, "-e", "2", "-q", "-o", run).stdout
    assert "trained small-cnn for 2 epochs" in out
    out = cli("detect", run, "-k", "5").stdout
    assert "top 5 suspects by learned (all of them flagged)" in out and "mAP" in out and "estimated noise" in out
    out = cli("report", run).stdout
    assert "pairflip at 20%" in out and "per epoch" in out and "top 10 suspects" in out
    assert "estimated noise" in out
    report = cli.json("report", run)
    assert report["estimate"]["by"].startswith("learned") and report["estimate"]["true_rate"] == pytest.approx(0.2, abs=0.001)


def test_noisyctl_detect_in_python_reads_what_the_command_reads(cli, digits_run, tmp_path):
    """For a notebook: noisyctl.detect(run) runs detect's detectors and returns its scores, flags,
    estimate and suspects, the same as `noisyctl detect --json`, and a DataFrame of every sample."""
    import shutil

    import noisyctl
    from noisyctl.errors import NoisyctlError
    from noisyctl.store import RunFile

    run = Path(shutil.copy(digits_run, tmp_path / "run.h5"))
    with RunFile(run) as opened:
        stored = {name: values.copy() for name, values in opened.scores().items()}
    found = noisyctl.detect(run, save=False)
    result = cli.json("detect", run, "--no-save")
    assert found.primary == result["primary"] and list(found.scores) == list(result["detectors"])
    for key in ("rate", "low", "high", "evidence", "count"):
        assert found.estimate[key] == result["estimate"][key]
    assert found.estimate["words"].startswith(("estimated noise", "no clear sign", "cannot tell"))
    assert int(found.flagged.sum()) == result["estimate"]["count"]
    assert [s["id"] for s in found.suspects] == [s["id"] for s in result["top"]]
    assert {name: m["map"] for name, m in found.metrics.items()} == \
        {name: d["metrics"]["map"] for name, d in result["detectors"].items()}
    frame = found.to_frame()
    assert len(frame) == result["samples"] and frame["id"][0] == result["top"][0]["id"]
    assert frame["flagged"].sum() == result["estimate"]["count"] and "suggested" in frame
    assert frame["is_noisy"].sum() == result["noisy"] and (frame["is_noisy"] == (frame["true"] != frame["given"])).all()
    assert repr(found).startswith(f"Detection(run='{run}', samples=1,797")
    with RunFile(run) as opened:  # save=False stored nothing
        assert list(opened.scores()) == list(stored) and all(
            np.array_equal(values, stored[name], equal_nan=True) for name, values in opened.scores().items())
    smooth = noisyctl.detect(run, ["ema-loss"], {"ema-loss": {"alpha": 0.5}}, top=3)
    assert smooth.outcomes[0].options == {"alpha": 0.5} and len(smooth.suspects) == 3
    with RunFile(run) as opened:
        assert list(opened.scores()) == ["ema-loss"]  # what correct, prune and report read
    with pytest.raises(NoisyctlError, match="options for detectors not run: aum"):
        noisyctl.detect(run, ["loss"], {"aum": {}})


def test_every_command_speaks_json(cli, digits_run, tmp_path):
    assert cli.json("synth", "-o", tmp_path / "l.h5")["flipped"] == 359
    trained = cli.json("train", "--dataset", "digits", "-e", "1", "-o", tmp_path / "r.h5")
    assert trained["epochs"] == 1 and trained["samples"] == 1797
    assert cli.json("detect", digits_run, "--no-save")["primary"] == "learned"
    report = cli.json("report", digits_run)
    assert report["samples"] == 1797 and len(report["epochs"]["train_loss"]) == 6
    assert {p["name"] for p in cli.json("plugins")["plugins"]} >= {"digits", "small-cnn", "loss", "uniform"}
    assert cli.json("schema")["version"] == 1


def test_recipe_options_fill_what_the_command_line_does_not_give(cli, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"steps:\n  - synth: {{noise: pairflip, rate: 0.1, out: {tmp_path / 'a.h5'}}}\n")
    result = cli.json("synth", "--recipe", recipe, "--rate", "0.3")
    assert result["noise"]["name"] == "pairflip"  # from the recipe
    assert result["noise"]["rate"] == 0.3  # the command line wins
    assert result["out"] == str(tmp_path / "a.h5")


@pytest.mark.parametrize("text, message", [
    ("steps:\n  - synth: {rat: 0.2}\n", "step 1 (synth): unknown key 'rat' (did you mean 'rate'?)"),
    ("step:\n  - synth: {}\n", "unknown key 'step' (did you mean 'steps'?)"),
    ("train: {epochs: 3}\n", "unknown key 'train'; a step goes in the 'steps' list (steps: [{train: {options}}])"),
    ("steps:\n  - synt: {}\n", "unknown command 'synt' (did you mean 'synth'?)"),
    ("steps:\n  - train: {epochs: many}\n", "step 1 (train): Invalid value for '--epochs'"),
    ("steps:\n  - train: {resume: maybe}\n", "'resume' must be true or false"),
    ("steps: [\n", "is not valid YAML at line"),
    ("steps:\n  - detect: {run: never-made.h5}\n", "'run' file never-made.h5 does not exist and no earlier step"),
    ("steps:\n  - synth: {out: x.h5}\n  - synth: {noise: nope, out: y.h5}\n", "unknown noise 'nope'"),
])
def test_bad_recipes_fail_with_one_line(cli, tmp_path, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(text)
    assert message in cli.error("run", recipe)


def test_a_failing_step_stops_the_recipe_before_later_steps(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("steps:\n  - synth: {noise: nope, out: a.h5}\n  - train: {labels: a.h5, out: r.h5}\n")
    assert "step 1 (synth): unknown noise 'nope'; available: from-file, instance, pairflip, transition, uniform" \
        in cli.error("run", recipe)
    assert not (tmp_path / "r.h5").exists()


@pytest.mark.parametrize("args, message", [
    (["train", "--dataset", "digits", "--model", "resnet9000", "-o", "r.h5"],
     "unknown model 'resnet9000' (did you mean 'resnet20'?); available: hf, lenet, mlp, resnet110"),
    (["train", "--dataset", "nope", "-o", "r.h5"], "unknown dataset 'nope'; available: blobs, cifar10, cifar100, digits"),
    (["detect", "missing.h5"], "missing.h5 does not exist"),
    (["detect", "foreign.h5"], "foreign.h5 is not a readable HDF5 file"),
    (["train", "-o", "r.h5"], "give --labels FILE (from synth), --dataset NAME or --data-root PATH"),
    (["synth"], "missing --out"),
    (["train", "--dataset", "digits", "--optimizer", "lion", "-o", "r.h5"], "unknown optimizer 'lion'"),
    (["synth", "-D", "test_fraction=2", "-o", "l.h5"], "test_fraction 2.0 is outside [0, 1) (2% is 0.02)"),
    (["synth", "-n", "uniform", "-r", "20", "-o", "l.h5"], "noise rate 20.0 is outside [0, 1) (20% is 0.2)"),
    (["run", "missing.yaml"], "recipe missing.yaml does not exist"),
])
def test_bad_input_fails_with_one_line(cli, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "foreign.h5").write_text("a,b\n1,2\n")
    assert message in cli.error(*args)


def test_detect_with_an_unknown_detector_lists_the_available_ones(cli, digits_run):
    line = cli.error("detect", digits_run, "-d", "nope")
    assert "unknown detector 'nope'; available: aum, cleanlab, datamap, ema-loss" in line and "learned" in line


def test_detect_on_a_labels_file_says_to_train_first(cli, tmp_path):
    cli("synth", "-o", tmp_path / "l.h5")
    assert "is a labels file, not a run file: train on it first" in cli.error("detect", tmp_path / "l.h5")


def test_a_file_given_as_the_argument_of_a_command_that_takes_it_as_an_option_names_the_option(cli):
    """`noisyctl train labels.h5`, as `detect run.h5` is typed: click's "unexpected extra argument"
    goes on to name --labels."""
    result = cli("train", "l.h5", "-o", "r.h5", ok=False)
    assert result.exit_code == 2
    assert "takes the file as --labels l.h5" in " ".join(result.stderr.replace("│", " ").split())
    other = cli("train", "something", ok=False)
    assert other.exit_code == 2 and "unexpected extra argument" in other.stderr and "takes" not in other.stderr


def test_help_lists_every_pipeline_command(cli, monkeypatch):
    """Each command is a row of the help's command table, with its description beside it: on a wide
    terminal one row each, not broken where the docstring's source line was (export's was, mid-sentence)."""
    monkeypatch.setenv("COLUMNS", "300")
    out = cli("--help").stdout
    commands = out[out.index("Commands"):]
    rows = {match.group(1): match.group(2) for match in re.finditer(r"^│ (\S+)\s+(\S.*?)\s*│$", commands, re.M)}
    for name in ("synth", "train", "detect", "prune", "correct", "import-review", "report", "train-detector", "run",
                 "plugins", "export"):
        assert name in rows and len(rows[name]) > 10, (name, sorted(rows))
    assert rows["export"].endswith("the labels as CSV, the cleaned data as a copy of its own file.")
    assert not re.search(r"^│ {3,}\S", commands, re.M), commands


def test_help_names_types_under_a_typer_without_bare_type():
    """Typer before 0.29 (0.27 on a lent GPU machine's image) names no ``bare_type``: every command
    ended in an internal error there. Its options are click's, with click's types; the help and the
    reference name those as they name the installed typer's, for every type our commands take."""
    import click

    from noisyctl.cli import create_app
    from noisyctl.cli.common import _plain_types, param_type_name
    from noisyctl.cli.reference import commands

    older = click.Command("older", params=[
        click.Option(["--dataset-option"], type=click.STRING, multiple=True),
        click.Option(["--run"], type=click.Path(dir_okay=False), multiple=True),
        click.Option(["--root"], type=click.Path(file_okay=False)),
        click.Option(["--rate"], type=click.FLOAT), click.Option(["--top"], type=click.INT),
        click.Option(["--name"], type=click.STRING), click.Argument(["labels"], type=click.Path())])
    _plain_types(older, click.Context(older))
    assert [p.metavar for p in older.params[:2]] == ["KEY=VALUE", "<path>"]
    older_names = {p.name: param_type_name(p) for p in older.params}
    assert older_names == {"dataset_option": "str", "run": "path", "root": "path", "rate": "float", "top": "int",
                           "name": "str", "labels": "path"}

    ours = {param_type_name(p) for _, command in commands(create_app()) for p in command.params
            if not getattr(p, "is_flag", False)}
    assert ours <= set(older_names.values()), ours


def test_the_clean_and_retrain_recipe_is_valid(cli):
    checked = cli.json("run", REPO / "recipes" / "clean-and-retrain.yaml", "--check")
    assert checked["valid"] and checked["steps"].count("train") == 5 and checked["steps"][-1] == "report"


def test_the_default_detector_recipe_is_valid_and_made_the_shipped_weights(cli):
    import yaml

    from noisyctl.builtin.detectors.learned import WEIGHTS_DIR
    from noisyctl.builtin.detectors.learned.network import load_weights

    recipe = REPO / "recipes" / "default-detector.yaml"
    checked = cli.json("run", recipe, "--check")
    assert checked["valid"] and checked["steps"][-1] == "train-detector"
    made = [Path(step["train"]["out"]).name for step in yaml.safe_load(recipe.read_text())["steps"] if "train" in step]
    for step in (s["train-detector"] for s in yaml.safe_load(recipe.read_text())["steps"] if "train-detector" in s):
        members, meta = load_weights(WEIGHTS_DIR / Path(step["out"]).name)
        assert [source["run"] for source in meta["trained_on"]] == [Path(r).name for r in step["runs"]]
        assert set(made) == {Path(r).name for r in step["runs"]} and len(members) == step.get("members", 1)


NEEDS_DATA = sorted(p.name for p in (REPO / "recipes").glob("*.yaml")
                    if p.name not in ("quickstart.yaml", "text-quickstart.yaml", "default-detector.yaml",
                                      "clean-and-retrain.yaml"))


@pytest.mark.parametrize("recipe", NEEDS_DATA)
def test_ready_recipes_are_valid_and_name_the_data_they_need(cli, tmp_path, monkeypatch, recipe):
    monkeypatch.chdir(tmp_path)  # no data/ here
    line = cli.error("run", REPO / "recipes" / recipe)
    assert "step 1 (synth)" in line and "data" in line and ("does not exist" in line or "not found" in line)


def test_report_follows_the_order_of_the_latest_detect(cli, digits_run, tmp_path):
    run = tmp_path / "run.h5"
    run.write_bytes(digits_run.read_bytes())
    cli("detect", run, "-d", "loss", "-d", "aum")
    cli("detect", run, "-d", "gmm-loss", "-d", "loss")
    report = cli.json("report", run)
    assert list(report["detectors"]) == ["gmm-loss", "loss", "aum"]
    assert report["ranked_by"] == "gmm-loss" and report["estimate"]["by"].startswith("gmm-loss")


def test_the_suspects_table_fits_80_columns_and_folds_a_table_row_s_text_without_cutting_it():
    """A table's row shown as text (``alcohol=11.82; ...``) beside hashed ids once pushed the scores off
    an 80-column terminal, and narrowed, cut its values (``alcohol=11.8…``)."""
    import io

    from rich.console import Console

    from noisyctl.cli.tables import suspects_table

    text = "alcohol=11.82; malic_acid=1.72; ash=1.88; alcalinity_of_ash=19.5; magnesium=86.0"
    rows = [{"rank": k, "id": f"row{100 + k}-e4b7a98{k}", "text": text, "given": "class_0", "true": "class_1",
             "suggested": "class_1", "score": 0.7 - k / 100, "is_noisy": True} for k in range(1, 4)]
    console = Console(width=80, file=io.StringIO(), record=True)
    console.print(suspects_table(rows, "learned"))
    lines = console.export_text().splitlines()
    assert max(map(len, lines)) <= 80
    body = [line for line in lines if line.startswith("│")]
    assert all(f"{row['score']:.3f}" in "".join(body) for row in rows)
    first = body[:next(i for i, line in enumerate(body[1:], 1) if line.split("│")[1].strip())]
    assert "".join(line.split("│")[3] for line in first).replace(" ", "") == text.replace(" ", "")
