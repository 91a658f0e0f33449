"""Command-line entry: ``python -m importer.sandbox`` and ``kirim-import sandbox``.

The fault flags set the initial faults; a running sandbox takes changes (including the
``me_body`` / ``accounts_body`` documents, which have no flag) at ``POST /_sandbox/faults``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from importer.sandbox.config import SandboxConfig, is_loopback, parse_latency
from importer.sandbox.embed import serve
from importer.sandbox.faults import DEFAULT_OVERSIZE_BYTES


def _host(text: str) -> str:
    if not is_loopback(text):
        raise argparse.ArgumentTypeError(f"only loopback hosts are allowed, not {text!r}")
    return text


def _latency(text: str) -> tuple[float, float]:
    try:
        return parse_latency(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within 0..1, got {text}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds >= 0, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the sandbox options to ``parser``."""
    parser.add_argument("--host", type=_host, default="127.0.0.1", help="loopback only")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--write-per-minute", type=int, default=600)
    parser.add_argument("--read-per-minute", type=int, default=6000)
    parser.add_argument(
        "--latency-ms", type=_latency, default=(0.0, 0.0), help="'50' or a range '50-150'"
    )
    parser.add_argument("--fault-rate", type=_rate, default=0.0, help="share of writes -> 5xx")
    parser.add_argument(
        "--ambiguous-rate",
        type=_rate,
        default=0.0,
        help="share of writes that take effect, then 502 or drop the connection",
    )
    parser.add_argument(
        "--html-rate",
        type=_rate,
        default=0.0,
        help="share of contact creates -> 200 with an HTML block page (no effect)",
    )
    parser.add_argument(
        "--oversize-rate",
        type=_rate,
        default=0.0,
        help="share of contact creates -> 200 with a huge JSON-looking body (no effect)",
    )
    parser.add_argument(
        "--oversize-bytes",
        type=int,
        default=DEFAULT_OVERSIZE_BYTES,
        help=f"size of that body (default {DEFAULT_OVERSIZE_BYTES})",
    )
    parser.add_argument(
        "--endless-rate",
        type=_rate,
        default=0.0,
        help="share of contact creates -> 200 with a body that never ends (no effect)",
    )
    parser.add_argument(
        "--retry-after",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="answer every write 429 with this Retry-After (no effect)",
    )
    parser.add_argument(
        "--error-message",
        default=None,
        metavar="TEXT",
        help="answer every contact create 400 invalid_field_value with this message",
    )
    parser.add_argument("--on-duplicate-phone", choices=("create", "conflict"), default="create")
    parser.add_argument("--seed", type=int, default=None)


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    """Translate parsed options into a ``SandboxConfig`` (raises ValueError when invalid)."""
    return SandboxConfig(
        host=args.host,
        port=args.port,
        write_per_minute=args.write_per_minute,
        read_per_minute=args.read_per_minute,
        latency_ms=args.latency_ms,
        fault_rate=args.fault_rate,
        ambiguous_rate=args.ambiguous_rate,
        on_duplicate_phone=args.on_duplicate_phone,
        seed=args.seed,
        html_rate=args.html_rate,
        oversize_rate=args.oversize_rate,
        oversize_bytes=args.oversize_bytes,
        endless_rate=args.endless_rate,
        retry_after_s=args.retry_after,
        error_message=args.error_message,
    )


def _announce(base_url: str, token: str) -> None:
    print(f"KIRIM_BASE_URL={base_url}", flush=True)
    print(f"KIRIM_API_KEY={token}", flush=True)


async def _main(config: SandboxConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await serve(config, ready=_announce, stop=stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; prints ``KIRIM_BASE_URL=...`` and ``KIRIM_API_KEY=...``."""
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_main(config))
    except OSError as exc:
        print(f"sandbox: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m importer.sandbox [options]``."""
    parser = argparse.ArgumentParser(
        prog="python -m importer.sandbox", description="Run the Kirim-compatible sandbox."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
