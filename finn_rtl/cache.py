"""Where finn-rtl keeps what it can reuse between runs (Verilator builds, synthesis results)."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir(kind: str) -> Path:
    """$FINN_RTL_CACHE/<kind>, by default ~/.cache/finn-rtl/<kind>."""
    base = os.environ.get("FINN_RTL_CACHE") or Path.home() / ".cache" / "finn-rtl"
    return Path(base) / kind
