"""The plugin system: entry points, provenance, clashes, broken plugins, autoload switch."""

import json

import pluggy
import pytest

from noisyctl import plugins
from noisyctl.api import BlockDetector, hookimpl
from noisyctl.errors import NoisyctlError

DETECTOR_PLUGIN = '''
from noisyctl.api import BlockDetector, hookimpl

class Spread(BlockDetector):
    """Standard deviation of the training loss, a summary wrapped
    in the source. What follows is detail."""
    reads = ("train_loss",)
    def score_block(self, block):
        return block["train_loss"].std(axis=1)

@hookimpl
def register_detectors(register):
    register("{name}", Spread)
'''


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path where tests install distributions the way pip lays them out."""
    monkeypatch.delenv(plugins.DISABLE_AUTOLOAD_ENV, raising=False)
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))

    def install(dist: str, modules: dict[str, str]):
        info = folder / f"{dist.replace('-', '_')}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
        (info / "entry_points.txt").write_text(
            "[noisyctl]\n" + "".join(f"{module} = {module}\n" for module in modules))
        for module, source in modules.items():
            (folder / f"{module}.py").write_text(source)

    yield install
    plugins.reset()


def test_plugins_lists_builtins_with_kind_plugin_distribution_and_version(cli):
    entries = {(e["kind"], e["name"]): e for e in cli.json("plugins")["plugins"]}
    expected = {("dataset", "digits"), ("noise", "uniform"), ("noise", "pairflip"), ("model", "small-cnn"),
                ("model", "timm"), ("detector", "loss"), ("detector", "ema-loss"), ("detector", "aum")}
    assert expected <= set(entries)
    for key in expected:
        assert entries[key]["distribution"] == "noisyctl" and entries[key]["version"]
        assert entries[key]["description"]
    table = cli("plugins").stdout
    assert "ema-loss" in table and "noisyctl" in table


def test_a_third_party_entry_point_is_loaded_and_used(cli, site, digits_run):
    site("noisyctl-spread", {"spread_plugin": DETECTOR_PLUGIN.format(name="spread")})
    entries = {e["name"]: e for e in cli.json("plugins")["plugins"]}
    assert entries["spread"]["distribution"] == "noisyctl-spread"
    assert entries["spread"]["version"] == "1.2.3"
    assert entries["spread"]["plugin"] == "noisyctl-spread:spread_plugin"
    assert entries["spread"]["description"] == "Standard deviation of the training loss, a summary wrapped in the source."
    detect = cli.json("detect", digits_run, "-d", "spread", "--no-save")
    assert detect["detectors"]["spread"]["plugin"] == ["noisyctl-spread", "1.2.3"]


def test_autoload_switch_keeps_third_party_plugins_out(cli, site, monkeypatch):
    site("noisyctl-spread", {"spread_plugin": DETECTOR_PLUGIN.format(name="spread")})
    monkeypatch.setenv(plugins.DISABLE_AUTOLOAD_ENV, "1")
    names = {e["name"] for e in cli.json("plugins")["plugins"]}
    assert "spread" not in names and "loss" in names


def test_a_plugin_that_fails_to_import_is_one_warning_and_the_cli_still_works(cli, site, capsys):
    site("noisyctl-broken", {"broken_plugin": "raise ImportError('needs libfoo')\n"})
    result = cli("plugins", "--json")
    # Plugins load as the app is built, before the test runner captures the command's own output.
    stderr = capsys.readouterr().err + result.stderr
    warnings = [line for line in stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert "broken_plugin" in warnings[0] and "noisyctl-broken 1.2.3" in warnings[0] and "needs libfoo" in warnings[0]
    assert "loss" in {e["name"] for e in json.loads(result.stdout)["plugins"]}


def test_a_plugin_that_raises_while_registering_is_skipped_with_a_warning(cli, site, capsys):
    site("noisyctl-raises", {"raising_plugin": (
        "from noisyctl.api import hookimpl\n"
        "@hookimpl\ndef register_noise(register):\n    raise RuntimeError('boom')\n")})
    result = cli("plugins")
    assert "raising_plugin' failed in register_noise (RuntimeError: boom)" in capsys.readouterr().err + result.stderr
    assert "uniform" in result.stdout


def test_two_plugins_registering_one_name_is_an_error_naming_both(cli, site):
    site("noisyctl-one", {"one_plugin": DETECTOR_PLUGIN.format(name="dup")})
    site("noisyctl-two", {"two_plugin": DETECTOR_PLUGIN.format(name="dup")})
    line = cli.error("plugins")
    assert "detector 'dup' is registered twice" in line
    assert "noisyctl-one 1.2.3" in line and "noisyctl-two 1.2.3" in line


def test_a_plugin_cannot_take_over_a_builtin_name(site):
    site("noisyctl-evil", {"evil_plugin": DETECTOR_PLUGIN.format(name="loss")})
    plugins.reset()
    with pytest.raises(NoisyctlError, match=r"detector 'loss' is registered twice: by plugin 'detectors' "
                                            r"\(noisyctl .*\) and by plugin 'noisyctl-evil:evil_plugin'"):
        plugins.registry()


def test_a_plugin_can_add_a_command(cli, site):
    site("noisyctl-hello", {"hello_plugin": (
        "from noisyctl.api import hookimpl\n"
        "@hookimpl\ndef register_commands(app):\n"
        "    @app.command()\n    def hello():\n        '''Say hello.'''\n        print('hello from a plugin')\n")})
    assert cli("hello").stdout.strip() == "hello from a plugin"
    assert "Say hello" in cli("--help").stdout


def test_builtins_load_without_any_entry_point_metadata(monkeypatch):
    """Built-ins are registered from their modules: a source tree or stale install metadata still has every kind."""
    monkeypatch.setattr(plugins, "entry_points", lambda group: [])
    plugins.reset()
    try:
        registry = plugins.registry()
        for kind in plugins.KIND_HOOKS:
            assert registry.names(kind), kind
        assert {r.distribution for r in registry.all()} == {"noisyctl"}
    finally:
        plugins.reset()


class _Grows:
    """A hook implementation written against a smaller spec than the caller's."""

    @hookimpl
    def register_detectors(self, register):
        register("grows", object)


def test_a_hook_implementation_gets_only_the_arguments_it_declares():
    manager = pluggy.PluginManager("noisyctl")
    manager.register(_Grows())
    seen = []
    [impl] = manager.hook.register_detectors.get_hookimpls()
    plugins.call_hook(impl, register=lambda name, obj: seen.append(name), added_later=1)
    assert seen == ["grows"]


class _Crashing(BlockDetector):
    """Raises a TypeError of its own while it is built."""

    reads = ("train_loss",)

    def __init__(self, threshold: float = 0.5) -> None:
        len(threshold)  # a bug inside the plugin, not a wrong option

    def score_block(self, block):
        return block["train_loss"].mean(axis=1)


def test_options_are_bound_before_the_call_and_a_plugins_own_error_names_it():
    registration = plugins.Registration("detector", "crashing", _Crashing, "mine", "my-dist", "2.0")
    with pytest.raises(NoisyctlError, match=r"detector 'crashing' takes no option 'treshold' "
                                            r"\(did you mean 'threshold'\?\); it takes threshold"):
        registration.call(options={"treshold": 1})
    with pytest.raises(NoisyctlError, match=r"detector 'crashing' from plugin 'mine' \(my-dist 2.0\) failed: "
                                            r"TypeError: object of type 'float' has no len"):
        registration.call()
    needs = plugins.Registration("noise", "needs", lambda context, rate, pairs: None, "mine", "my-dist", "2.0")
    with pytest.raises(NoisyctlError, match="noise 'needs' needs the option 'pairs'"):
        needs.call(None, 0.1)
