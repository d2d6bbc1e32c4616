"""Built-in plugins. Each module is an entry point of the ``noisyctl`` group,
loaded by the same plugin manager as third-party plugins."""
