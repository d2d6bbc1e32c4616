"""Recording from the training frameworks people already use, over :class:`noisyctl.Recorder`:
``noisyctl.integrations.lightning`` (PyTorch Lightning) and ``noisyctl.integrations.transformers``
(the Hugging Face ``Trainer``). Each imports its framework only when used; install them with
``pip install 'noisyctl[lightning]'`` or ``'noisyctl[transformers]'``."""
