"""A local, Kirim-compatible HTTP server for tests, demos and benchmarks.

It shares no code with the rest of ``importer`` on purpose, so it cannot agree with the
client's bugs. Typical use::

    from importer.sandbox import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig(write_per_minute=60, seed=1)) as sb:
        ...  # talk to sb.base_url with "Authorization: Bearer " + sb.token
        sb.set_faults(html_rate=1.0)  # misbehave from now on (see importer.sandbox.faults)
"""

from importer.sandbox.config import DEFAULT_ACCOUNTS, Account, SandboxConfig
from importer.sandbox.embed import Sandbox, SandboxServer, serve
from importer.sandbox.faults import FaultSettings
from importer.sandbox.state import SandboxState

__all__ = [
    "DEFAULT_ACCOUNTS",
    "Account",
    "FaultSettings",
    "Sandbox",
    "SandboxConfig",
    "SandboxServer",
    "SandboxState",
    "serve",
]
