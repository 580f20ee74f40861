"""Test-wide settings: keep Hugging Face's cache and the hub out of the user's home and off the network."""

import atexit
import os
import shutil
import tempfile

# `datasets` reads these once, when first imported, so they are set before any test imports it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
_cache = tempfile.mkdtemp(prefix="textgen-tests-hf-cache-")
os.environ["HF_DATASETS_CACHE"] = _cache
atexit.register(shutil.rmtree, _cache, ignore_errors=True)
