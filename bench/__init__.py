"""``make bench``: speed and memory figures, each printed beside a reference measured in the same run."""

import inference  # noqa: E402,F401  (the allocator setting the app runs with: see inference/__init__.py)
