"""Progress on stderr for steps that take more than a few seconds (rich): a bar where the work
is counted, a spinner where it is one call. Quiet when stderr is not a terminal (pipes, CI, tests),
so logs and captured output stay clean."""
from __future__ import annotations

import contextlib
import sys

from rich.console import Console


_shown = []  # the display on screen: rich shows one at a time, so an inner one is left out


def _console() -> Console | None:
    return Console(stderr=True) if sys.stderr.isatty() and not _shown else None


def track(items, description: str, total: int | None = None):
    """`items`, with a progress bar while they are consumed."""
    console = _console()
    if console is None:
        yield from items
        return
    from rich.progress import track as rich_track

    _shown.append(description)
    try:
        yield from rich_track(items, description=description, total=total, console=console, transient=True)
    finally:
        _shown.pop()


@contextlib.contextmanager
def status(description: str):
    """A spinner while the block runs."""
    console = _console()
    if console is None:
        yield
        return
    _shown.append(description)
    try:
        with console.status(description):
            yield
    finally:
        _shown.pop()
