"""The plugin manager and the registry of named components.

Built-in plugins are the modules in ``BUILTIN_PLUGINS``, registered first and directly (as llm and
datasette do), so a source tree runs without being installed and no stale install metadata can drop
one. Third-party plugins are entry points in the ``noisyctl`` group, each imported on its own so
that one broken plugin is a warning, not a dead CLI. Set ``NOISYCTL_DISABLE_PLUGIN_AUTOLOAD=1`` to
load the built-ins only.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any, Mapping

import pluggy
from pluggy import HookImpl

from noisyctl import hookspecs
from noisyctl.errors import NoisyctlError, nearest

ENTRY_POINT_GROUP = "noisyctl"
BUILTIN_DISTRIBUTION = "noisyctl"
BUILTIN_PLUGINS = (
    "noisyctl.builtin.datasets",
    "noisyctl.builtin.models",
    "noisyctl.builtin.noise",
    "noisyctl.builtin.detectors",
    "noisyctl.builtin.correctors",
    "noisyctl.builtin.strategies",
)
DISABLE_AUTOLOAD_ENV = "NOISYCTL_DISABLE_PLUGIN_AUTOLOAD"
# dataset options a user may try for the data's location, which every dataset takes as --data-root instead
DATA_ROOT_GUESSES = frozenset({"path", "file", "filename", "root", "data_root", "dir", "folder", "data"})

# kind -> the hook that registers it
KIND_HOOKS = {
    "dataset": "register_datasets",
    "model": "register_models",
    "noise": "register_noise",
    "detector": "register_detectors",
    "corrector": "register_correctors",
    "strategy": "register_strategies",
}


@dataclass(frozen=True)
class Registration:
    kind: str
    name: str
    obj: Any
    plugin: str
    distribution: str
    version: str

    @property
    def description(self) -> str:
        """The plugin's ``description``, or its docstring's first sentence on one line (a summary
        wrapped in the source was cut at its first line break)."""
        doc = getattr(self.obj, "description", None) or getattr(self.obj, "__doc__", None) or ""
        paragraph = " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())
        return re.split(r"(?<=\.)\s+(?=[A-Z`])", paragraph, maxsplit=1)[0]

    @property
    def origin(self) -> list[str]:
        """``[distribution, version]``, as run files record which plugin produced what."""
        return [self.distribution, self.version]

    def provenance(self) -> str:
        return f"plugin '{self.plugin}' ({self.distribution} {self.version})"

    def call(self, *args: Any, options: Mapping[str, Any] | None = None) -> Any:
        """Run the plugin, ``obj(*args, **options)`` (for a class, its constructor): the one way
        noisyctl calls every kind.

        ``options`` (the user's ``-D``/``-M``/``-N``/``--detector-option``/... values) are bound
        against the plugin's signature first, so an unknown or missing option is one line naming the
        options it does take; anything raised inside the plugin names the plugin and its distribution.
        A plugin with ``**options`` in its signature takes whatever it is given.
        """
        options = dict(options or {})
        self._check_options(len(args), options)
        return self.guarded(self.obj, *args, **options)

    def _check_options(self, positional: int, options: dict[str, Any]) -> None:
        try:
            signature = inspect.signature(self.obj)
        except (TypeError, ValueError):
            return  # no signature to read (a C callable): the call itself will tell
        parameters = list(signature.parameters.values())[positional:]
        if any(p.kind is p.VAR_KEYWORD for p in parameters):
            return
        takes = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        for option in options:
            if option not in takes:
                where = ""
                if self.kind == "dataset" and option in DATA_ROOT_GUESSES:
                    where = " (the data's file or folder is --data-root PATH; data_root in a recipe)"
                raise NoisyctlError(f"{self.kind} '{self.name}' takes no option '{option}'{nearest(option, takes)}; "
                                    f"it takes {', '.join(takes) or 'no options'}{where}")
        for p in parameters:
            if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in options:
                raise NoisyctlError(f"{self.kind} '{self.name}' needs the option '{p.name}'")

    def guarded(self, call, *args: Any, **kwargs: Any) -> Any:
        """Run plugin code; anything it raises but a NoisyctlError is reported as this plugin's failure."""
        try:
            return call(*args, **kwargs)
        except NoisyctlError:
            raise
        except Exception as exc:
            raise NoisyctlError(f"{self.kind} '{self.name}' from {self.provenance()} failed: "
                                f"{type(exc).__name__}: {exc}") from None


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


class Registry:
    """Every registered component, by kind and name, with where it came from."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], Registration] = {}

    def add(self, registration: Registration) -> None:
        key = (registration.kind, registration.name)
        existing = self._entries.get(key)
        if existing is not None:
            raise NoisyctlError(
                f"{registration.kind} '{registration.name}' is registered twice: by "
                f"{existing.provenance()} and by {registration.provenance()}; uninstall one of them"
            )
        self._entries[key] = registration

    def names(self, kind: str) -> list[str]:
        return sorted(name for k, name in self._entries if k == kind)

    def all(self) -> list[Registration]:
        return sorted(self._entries.values(), key=lambda r: (r.kind, r.name))

    def get(self, kind: str, name: str) -> Registration:
        """Look a name up; ``family:variant`` resolves to ``family``."""
        entry = self._entries.get((kind, name))
        if entry is None and ":" in name:
            entry = self._entries.get((kind, name.split(":", 1)[0]))
        if entry is None:
            available = ", ".join(self.names(kind)) or "none"
            raise NoisyctlError(f"unknown {kind} '{name}'{nearest(name, self.names(kind))}; available: {available}")
        return entry


@dataclass
class LoadedPlugins:
    manager: pluggy.PluginManager
    registry: Registry
    # plugin name -> (distribution, version)
    origins: dict[str, tuple[str, str]]


def _autoload_disabled() -> bool:
    return os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _load_builtins(manager: pluggy.PluginManager) -> dict[str, tuple[str, str]]:
    from noisyctl import __version__

    origins = {}
    for module_name in BUILTIN_PLUGINS:
        plugin_name = module_name.rsplit(".", 1)[-1]
        manager.register(importlib.import_module(module_name), name=plugin_name)
        origins[plugin_name] = (BUILTIN_DISTRIBUTION, __version__)
    return origins


def _load_entry_points(manager: pluggy.PluginManager) -> dict[str, tuple[str, str]]:
    origins: dict[str, tuple[str, str]] = {}
    if _autoload_disabled():
        return origins
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist_name = ep.dist.name if ep.dist is not None else "unknown"
        dist_version = ep.dist.version if ep.dist is not None else "unknown"
        if dist_name == BUILTIN_DISTRIBUTION:
            continue  # an older install of noisyctl itself, whose built-ins came in this way
        plugin_name = f"{dist_name}:{ep.name}"
        if manager.has_plugin(plugin_name):
            continue  # the same distribution seen twice on sys.path
        try:
            module = ep.load()
            manager.register(module, name=plugin_name)
        except Exception as exc:  # a broken plugin must not take the CLI down
            warn(f"plugin '{plugin_name}' from {dist_name} {dist_version} failed to load "
                 f"({type(exc).__name__}: {exc}); skipped")
            continue
        origins[plugin_name] = (dist_name, dist_version)
    return origins


def call_hook(impl: HookImpl, **arguments: Any) -> Any:
    """Call one implementation with only the arguments it declares, as pluggy's own hook calls do:
    a hook's spec can grow without breaking the plugins written against it."""
    return impl.function(*(arguments[name] for name in impl.argnames))


def _collect(manager: pluggy.PluginManager, origins: dict[str, tuple[str, str]]) -> Registry:
    registry = Registry()
    for kind, hook_name in KIND_HOOKS.items():
        for impl in getattr(manager.hook, hook_name).get_hookimpls():
            distribution, version = origins.get(impl.plugin_name, ("unknown", "unknown"))

            def register(name: str, obj: Any, *, _plugin=impl.plugin_name,
                         _dist=distribution, _ver=version, _kind=kind) -> None:
                registry.add(Registration(_kind, name, obj, _plugin, _dist, _ver))

            try:
                call_hook(impl, register=register)
            except NoisyctlError:
                raise
            except Exception as exc:
                warn(f"plugin '{impl.plugin_name}' failed in {hook_name} "
                     f"({type(exc).__name__}: {exc}); its {kind}s are skipped")
    return registry


def build(extra_plugins: tuple[object, ...] = ()) -> LoadedPlugins:
    """Load every plugin (entry points, then ``extra_plugins``) into a fresh registry."""
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    # Built-ins first, so a clash names the built-in as the original.
    origins = _load_builtins(manager)
    origins.update(_load_entry_points(manager))
    for plugin in extra_plugins:
        name = getattr(plugin, "__name__", repr(plugin))
        manager.register(plugin, name=name)
        origins[name] = ("local", "-")
    manager.check_pending()
    return LoadedPlugins(manager, _collect(manager, origins), origins)


_extra_plugins: list[object] = []


@lru_cache(maxsize=1)
def _loaded(extra: tuple[object, ...]) -> LoadedPlugins:
    return build(extra)


def loaded() -> LoadedPlugins:
    return _loaded(tuple(_extra_plugins))


def registry() -> Registry:
    return loaded().registry


def get(kind: str, name: str) -> Registration:
    return registry().get(kind, name)


def add_local_plugin(plugin: object) -> None:
    """Register an in-process plugin (tests, notebooks) on top of the entry points."""
    _extra_plugins.append(plugin)


def remove_local_plugin(plugin: object) -> None:
    _extra_plugins.remove(plugin)


def reset() -> None:
    """Forget the loaded plugins so the next lookup loads them again."""
    _loaded.cache_clear()

