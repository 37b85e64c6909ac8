"""`codesign map MODEL --hw HW.yaml` (wired once the mapper lands)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def add_parser(sub, model_args: Callable[[argparse.ArgumentParser], None]) -> None:
    del sub, model_args
