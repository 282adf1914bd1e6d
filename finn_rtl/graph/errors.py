"""User-facing errors: each names the node (or file) and says what would work."""


class CompileError(Exception):
    """The model cannot be compiled as given; the message says why and what would work."""

    def __init__(self, message: str, node: str | None = None):
        self.node = node
        super().__init__(f"node '{node}: {message}" if node and "'" in node else
                         f"node '{node}': {message}" if node else message)
