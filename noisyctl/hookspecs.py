"""Hook specifications: the whole surface a plugin can implement.

Every hook hands over a ``register`` callback instead of returning a list, so
the host knows which plugin registered which name, refuses clashes and reports
provenance in ``noisyctl plugins``. An implementation may accept fewer
arguments than its spec, so specs can grow without breaking plugins.
"""

import pluggy

PROJECT_NAME = "noisyctl"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_datasets(register):
    """Register dataset loaders.

    :param register: ``register(name, loader)``; ``loader(root, **options)``
        returns a :class:`noisyctl.api.DatasetData`.
    """


@hookspec
def register_models(register):
    """Register model factories.

    :param register: ``register(name, factory)``; ``factory(spec)`` takes a
        :class:`noisyctl.api.ModelSpec` and returns a ``torch.nn.Module``
        mapping a batch of inputs to logits. A name ``family`` also answers
        ``family:variant`` (``timm:resnet18``), with the variant in the spec.
    """


@hookspec
def register_noise(register):
    """Register label-noise generators.

    :param register: ``register(name, noise)``; ``noise(context, rate,
        **options)`` takes a :class:`noisyctl.api.NoiseContext` and returns the
        noisy labels as a new array.
    """


@hookspec
def register_detectors(register):
    """Register noise detectors.

    :param register: ``register(name, detector_class)``; the class derives
        from :class:`noisyctl.api.Detector` and takes its options as keyword
        arguments.
    """


@hookspec
def register_correctors(register):
    """Register label correctors (proposed labels with a confidence).

    :param register: ``register(name, corrector)``.
    """


@hookspec
def register_strategies(register):
    """Register training strategies used by ``train --strategy``.

    :param register: ``register(name, strategy)``.
    """


@hookspec
def register_commands(app):
    """Add subcommands to the CLI.

    :param app: the root ``typer.Typer``; add commands with ``@app.command()``.
    """
