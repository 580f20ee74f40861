"""Built-in corpus loaders; each module holds one loader class."""
