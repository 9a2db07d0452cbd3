# The native module; use the `kestrel` and `kestrel.metrics` APIs instead.
from typing import Any

def __getattr__(name: str) -> Any: ...
