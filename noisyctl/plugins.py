"""The plugin manager and the registry of named components.

Built-in plugins are entry points of the ``noisyctl`` distribution in the
``noisyctl`` group, loaded exactly like third-party ones. Each entry point is
imported on its own so that one broken plugin is a warning, not a dead CLI.
Set ``NOISYCTL_DISABLE_PLUGIN_AUTOLOAD=1`` to load the built-ins only.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

import pluggy

from noisyctl import hookspecs
from noisyctl.errors import NoisyctlError

ENTRY_POINT_GROUP = "noisyctl"
BUILTIN_DISTRIBUTION = "noisyctl"
DISABLE_AUTOLOAD_ENV = "NOISYCTL_DISABLE_PLUGIN_AUTOLOAD"

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
        doc = getattr(self.obj, "description", None) or getattr(self.obj, "__doc__", None) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""

    @property
    def origin(self) -> list[str]:
        """``[distribution, version]``, as run files record which plugin produced what."""
        return [self.distribution, self.version]

    def provenance(self) -> str:
        return f"plugin '{self.plugin}' ({self.distribution} {self.version})"

    def create(self, **options: Any) -> Any:
        """An instance of a class-style plugin (detector, corrector, strategy) taking ``options``."""
        try:
            return self.obj(**options)
        except TypeError as exc:
            raise NoisyctlError(f"{self.kind} '{self.name}' does not take options {sorted(options)}: {exc}") from None

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
            raise NoisyctlError(f"unknown {kind} '{name}'; available: {available}")
        return entry


@dataclass
class LoadedPlugins:
    manager: pluggy.PluginManager
    registry: Registry
    # plugin name -> (distribution, version)
    origins: dict[str, tuple[str, str]]


def _autoload_disabled() -> bool:
    return os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _load_entry_points(manager: pluggy.PluginManager) -> dict[str, tuple[str, str]]:
    origins: dict[str, tuple[str, str]] = {}
    skip_third_party = _autoload_disabled()
    found = entry_points(group=ENTRY_POINT_GROUP)
    # Built-ins first, so a clash names the built-in as the original.
    ordered = sorted(found, key=lambda ep: (ep.dist is None or ep.dist.name != BUILTIN_DISTRIBUTION))
    for ep in ordered:
        dist_name = ep.dist.name if ep.dist is not None else "unknown"
        dist_version = ep.dist.version if ep.dist is not None else "unknown"
        builtin = dist_name == BUILTIN_DISTRIBUTION
        if skip_third_party and not builtin:
            continue
        plugin_name = ep.name if builtin else f"{dist_name}:{ep.name}"
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


def _collect(manager: pluggy.PluginManager, origins: dict[str, tuple[str, str]]) -> Registry:
    registry = Registry()
    for kind, hook_name in KIND_HOOKS.items():
        for impl in getattr(manager.hook, hook_name).get_hookimpls():
            distribution, version = origins.get(impl.plugin_name, ("unknown", "unknown"))

            def register(name: str, obj: Any, *, _plugin=impl.plugin_name,
                         _dist=distribution, _ver=version, _kind=kind) -> None:
                registry.add(Registration(_kind, name, obj, _plugin, _dist, _ver))

            try:
                impl.function(register=register)
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
    origins = _load_entry_points(manager)
    if not any(dist == BUILTIN_DISTRIBUTION for dist, _ in origins.values()):
        raise NoisyctlError("noisyctl's built-in plugins were not found: install the package "
                            "(pip install -e .) rather than running it from a bare source tree")
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

