"""plugins/noisyctl-example, pip-installed for real into a separate environment, is found and used."""

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "plugins" / "noisyctl-example"


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory):
    """A fresh venv that sees this environment's packages (noisyctl, torch, ...) plus the installed example."""
    root = tmp_path_factory.mktemp("plugin-env")
    venv.EnvBuilder(with_pip=False).create(root / "venv")
    python = root / "venv" / "bin" / "python"
    target_site = subprocess.check_output(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip()
    # addsitedir (unlike a plain path line) also runs this environment's .pth files: the editable noisyctl.
    host_site = sysconfig.get_paths()["purelib"]
    Path(target_site, "_host_environment.pth").write_text(f"import site; site.addsitedir({host_site!r})\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", str(EXAMPLE)], check=True)
    env = {k: v for k, v in os.environ.items() if k != "NOISYCTL_DISABLE_PLUGIN_AUTOLOAD"}

    def noisyctl(*args, check=True, extra_env=None):
        done = subprocess.run([python, "-m", "noisyctl", *map(str, args)], capture_output=True, text=True,
                              cwd=root, env={**env, **(extra_env or {})})
        if check:
            assert done.returncode == 0, done.stderr
        return done

    return noisyctl, root


def test_the_installed_example_plugin_is_listed_with_its_distribution(plugin_env):
    noisyctl, _ = plugin_env
    entries = {(e["kind"], e["name"]): e for e in json.loads(noisyctl("plugins", "--json").stdout)["plugins"]}
    for key in (("dataset", "npy-folder"), ("detector", "disagreement"), ("noise", "collapse")):
        assert entries[key]["distribution"] == "noisyctl-example"
        assert entries[key]["version"] == "0.1.0"
    assert entries[("detector", "loss")]["distribution"] == "noisyctl"
    off = noisyctl("plugins", "--json", extra_env={"NOISYCTL_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert "disagreement" not in {e["name"] for e in json.loads(off.stdout)["plugins"]}


@pytest.mark.slow
def test_synth_and_detect_use_the_example_plugin(plugin_env):
    noisyctl, root = plugin_env
    synth = json.loads(noisyctl("synth", "--noise", "collapse", "--rate", "0.1", "-N", "target=3",
                                "-o", "labels.h5", "--json").stdout)
    assert synth["flipped"] == round(0.1 * 1797)
    assert synth["noise"]["options"] == {"target": 3}
    noisyctl("train", "--labels", "labels.h5", "--epochs", "3", "-q", "-o", "run.h5")
    detect = json.loads(noisyctl("detect", "run.h5", "-d", "disagreement", "-d", "loss", "--json").stdout)
    disagreement = detect["detectors"]["disagreement"]
    assert disagreement["plugin"] == ["noisyctl-example", "0.1.0"]
    assert disagreement["flagged"] > 0  # the example detector makes its own decision
    assert disagreement["metrics"]["auc"] > 0.6
    assert all(row["given"] == "3" for row in detect["top"][:5])  # collapsed samples carry the target


def test_the_example_dataset_loads_its_files_and_hands_them_back_relabeled(plugin_env):
    """npy-folder, a third party's dataset: synth reads its class folders of .npy files, and export
    --data-copy writes them back through its relabeled_copy, each file in the folder of its class as
    the labels file now has it."""
    import numpy as np
    from noisyctl.store import read_labels

    noisyctl, root = plugin_env
    rng = np.random.default_rng(0)
    for c, name in enumerate(("bird", "cat", "dog")):
        (root / "vectors" / name).mkdir(parents=True)
        for k in range(8):
            np.save(root / "vectors" / name / f"{name}{k}.npy", rng.normal(c, 0.1, 16).astype(np.float32))
    synth = json.loads(noisyctl("synth", "-d", "npy-folder", "--data-root", root / "vectors", "-n", "uniform",
                                "-r", "0.25", "-o", "labels.h5", "--json").stdout)
    assert synth["samples"] == 24 and synth["flipped"] == 6
    copy = json.loads(noisyctl("export", "labels.h5", "--data-copy", root / "relabeled", "--json").stdout)
    assert copy["data_copy"]["rows"] == 24 and copy["data_copy"]["relabeled"] == 6
    labels = read_labels(root / "labels.h5")
    placed = {f"{file.parent.name}/{file.name}" for file in (root / "relabeled").glob("*/*.npy")}
    now = {f"{labels.class_names[c]}/{sample_id.split('/')[1]}"
           for sample_id, c in zip(labels.ids, labels.given_labels)}
    assert placed == now and len(placed) == 24
    refused = noisyctl("export", "labels.h5", "--data-copy", root / "vectors" / "inside", check=False)
    assert refused.returncode != 0 and "is inside the dataset" in refused.stderr
