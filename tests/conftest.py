"""Test-wide setup: `tests.support` importable everywhere; hypothesis tuned for a shared machine."""

import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The machine is shared and noisy: a per-example deadline would fail on load, not on bugs.
settings.register_profile("default", deadline=None)
settings.register_profile(
    "thorough", deadline=None, max_examples=2000, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
