"""textgen's version, in a module of its own so that modules inside the package can read it without importing
the package's ``__init__`` (pyproject.toml states the same number for the distribution)."""

__version__ = "0.1.0"
