"""textgen: character-level vanilla RNN text generators (KTH DD2424 Assignment 4) for any corpus."""

__version__ = "0.1.0"
