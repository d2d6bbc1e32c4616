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
    for key in (("detector", "disagreement"), ("noise", "collapse")):
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
