"""The deepinv solvers that ``peers.DeepinvPeer`` wraps, by name; torch-free, so the command line can list them."""

METHODS = ("dps", "ddrm", "diffpir")
