"""User-facing errors: each names the node (or file) and says what would work."""


class CompileError(Exception):
    """The model cannot be compiled as given; the message says why and what would work."""

    def __init__(self, message: str, node: str | None = None, detail: str | None = None):
        self.node = node
        where = f"node '{node}'" + (f" ({detail})" if detail else "") if node else ""
        super().__init__(f"{where}: {message}" if where else message)
