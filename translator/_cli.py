"""``translator serve | translate | matrix | backends``.

``translate`` prints the native request a backend would be sent on stdout and
what the compatibility matrix did on stderr; a request the matrix (or the
codec) refuses exits with status 2 and the OpenAI error body on stdout. Other
failures (a bad configuration, an unknown backend) exit with status 1.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import msgspec

from ._backend import Backend, BackendContext, BackendSettings
from ._compat import Action, Matrix, Mode, Report, Treatment
from ._version import __version__
from .config import Config, ConfigError, default_data_dir, load_config
from .errors import TranslatorError

if TYPE_CHECKING:
    from pluggy import PluginManager

    from ._plugins import BackendInfo

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_REJECTED = 2


class CLIError(Exception):
    """A failure reported as one line on stderr, exit status 1."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except (CLIError, ConfigError) as exc:
        print(f"translator: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a failure nobody foresaw: still one line, never a traceback
        print(f"translator: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="translator",
        description="Drive any chat backend with the OpenAI API.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the OpenAI-compatible server")
    serve.add_argument("--host", help="address to listen on (default: config, else 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: config, else 8080)")
    serve.add_argument("--config", type=Path, help="TOML configuration file")
    serve.add_argument(
        "--workers", type=int, default=1, help="processes serving the port (default: 1)"
    )
    serve.add_argument("--log-format", choices=("text", "json"), default="text")
    serve.add_argument("--log-level", default="INFO", type=str.upper)
    serve.set_defaults(run=_serve)

    translate = commands.add_parser(
        "translate", help="print the native request a backend would be sent"
    )
    translate.add_argument("file", help="an OpenAI chat completion request (JSON), or - for stdin")
    translate.add_argument("--backend", required=True, help="a configured backend or a plugin")
    translate.add_argument("--config", type=Path, help="TOML configuration file")
    translate.add_argument("--compat", choices=[m.value for m in Mode], help="override the mode")
    translate.set_defaults(run=_translate)

    matrix = commands.add_parser("matrix", help="print compatibility matrices")
    matrix.add_argument("--backend", help="one backend (default: every one)")
    matrix.add_argument("--format", choices=("table", "json", "rst"), default="table")
    matrix.add_argument("--config", type=Path, help="TOML configuration file")
    matrix.set_defaults(run=_matrix)

    backends = commands.add_parser("backends", help="list the backend plugins installed")
    backends.set_defaults(run=_backends)
    return parser


# -- serve ---------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    from .server import create_app, run
    from .server._logs import setup_logging

    level = logging.getLevelName(args.log_level)
    if not isinstance(level, int):
        raise CLIError(f"unknown log level {args.log_level!r}")
    if args.config:
        config = load_config(args.config)
    else:
        config = Config.default(data_dir=default_data_dir())
    if args.workers < 1:
        raise CLIError(f"--workers must be at least 1 (got {args.workers})")
    if args.workers > 1 and not config.stores.shared:
        raise CLIError(
            f"--workers {args.workers} needs stores every worker shares: set [stores] "
            "sessions and files to 'local' or a Redis URL, not 'memory'"
        )
    observed = config.server.observability
    # The process's logging is set once the command will serve, not before a refusal.
    setup_logging(level, json=args.log_format == "json", access=observed.access_log)
    if observed.traces:
        _configure_tracing()
    host = args.host or config.server.host
    port = config.server.port if args.port is None else args.port

    def announce(root: str) -> None:
        _announce(sys.stdout, root, config)

    try:
        if args.workers > 1:
            from .server._workers import run_workers

            create_app(config)  # a configuration no worker could serve fails here, once
            return run_workers(
                lambda: create_app(config), host, port, args.workers, announce=announce
            )
        run(create_app(config), host, port, announce=announce)
    except OSError as exc:
        raise CLIError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return EXIT_OK


def _configure_tracing() -> None:
    """The global tracer provider, from the ``OTEL_*`` variables (needs the ``otel`` extra)."""
    try:
        from .server._tracing import configure_from_environment
    except ImportError as exc:
        raise CLIError(
            "server.observability.traces needs OpenTelemetry: "
            f"pip install 'openai-translator[otel]' ({exc})"
        ) from None
    try:
        configure_from_environment()
    except RuntimeError as exc:
        raise CLIError(str(exc)) from None


def _announce(out: TextIO, root: str, config: Config) -> None:
    """The base URL and an example to paste."""
    base = f"{root}/v1/openai"
    model = _example_model(config)
    key = "<your key>" if config.server.api_keys or config.server.api_keys_env else "unused"
    body = msgspec.json.encode(
        {"model": model, "messages": [{"role": "user", "content": "Hello"}]}
    ).decode()
    auth = f" \\\n    -H {shlex.quote('Authorization: Bearer ' + key)}" if key != "unused" else ""
    python = (
        f'import openai; c = openai.OpenAI(base_url="{base}", api_key="{key}"); '
        f'print(c.chat.completions.create(model="{model}", '
        'messages=[{"role": "user", "content": "Hello"}]).choices[0].message.content)'
    )
    backends = ", ".join(config.backends)
    out.write(
        f"translator serving {backends}\n"
        f"OpenAI base URL: {base}\n\n"
        "Try it:\n"
        f"  curl -s {base}/chat/completions \\\n"
        f"    -H 'Content-Type: application/json'{auth} \\\n"
        f"    -d {shlex.quote(body)}\n\n"
        "or with the OpenAI SDK (python -m pip install openai, if it is not installed):\n"
        f"  python -c {shlex.quote(python)}\n"
    )
    out.flush()


def _example_model(config: Config) -> str:
    """The first model ``GET /v1/models`` lists; without one, a name that is routed."""
    from ._routing import RouteTable, listed_models

    router = RouteTable(config.routes, config.backends, config.fallback_backend)
    for model, _ in listed_models(config.backends, router):
        return model
    # Nothing listed: a name a prefix route takes, else any name the default takes.
    prefixed = next((r.model[:-1] for r in config.routes if r.is_prefix and r.model != "*"), None)
    return prefixed or config.fallback_backend or "model"


# -- translate -----------------------------------------------------------------


def _translate(args: argparse.Namespace) -> int:
    body = _read_request(args.file)
    backend = _build_backend(args.backend, args.config)
    mode = Mode(args.compat) if args.compat else None
    from ._core import Translator

    translator = Translator({backend.name: backend})
    try:
        request, report, target = translator.prepare(body, backend.name, mode=mode)
        native = target.encode_request(request)
    except TranslatorError as exc:
        sys.stdout.buffer.write(exc.to_json() + b"\n")
        sys.stdout.flush()
        print(f"rejected: {exc.message}", file=sys.stderr)
        return EXIT_REJECTED
    except NotImplementedError as exc:
        raise CLIError(str(exc)) from None
    sys.stdout.buffer.write(_pretty(native) + b"\n")
    sys.stdout.flush()
    _print_report(sys.stderr, report)
    return EXIT_OK


def _read_request(file: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        raise CLIError(f"cannot read {file}: {exc.strerror or exc}") from None


def _pretty(native: bytes) -> bytes:
    """A JSON body indented for reading; anything else as it is."""
    try:
        msgspec.json.decode(native)
    except msgspec.DecodeError:
        return native
    return msgspec.json.format(native, indent=2)


def _print_report(out: TextIO, report: Report) -> None:
    if not report.actions:
        out.write(f"{report.backend}: every field sent is supported\n")
        return
    for action in report.actions:
        out.write(f"{action.path}: {_done(action, report.backend)} ({action.reason})\n")


def _done(action: Action, backend: str) -> str:
    """What the matrix did to one field, in words."""
    if action.relaxed:
        return f"dropped in lenient mode; {backend} rejects it"
    if action.treatment is Treatment.EMULATED:
        return "emulated by the translator"
    if action.treatment is Treatment.IGNORED:
        return f"dropped; {backend} ignores it"
    return f"{action.treatment.value} by {backend}"


# -- matrix and backends ---------------------------------------------------------


def _matrix(args: argparse.Namespace) -> int:
    from ._matrices import builtin_matrices, matrix_to_json, render_rst, render_table

    matrices: list[Matrix]
    if args.backend:
        matrices = [_build_backend(args.backend, args.config).matrix]
    elif args.config:
        matrices = [b.matrix for b in _configured_backends(load_config(args.config))]
    else:
        matrices = builtin_matrices()
    if args.format == "json":
        sys.stdout.buffer.write(msgspec.json.format(matrix_to_json(matrices), indent=2) + b"\n")
    elif args.format == "rst":
        sys.stdout.write(render_rst(matrices))
    else:
        sys.stdout.write(render_table(matrices))
    sys.stdout.flush()
    return EXIT_OK


def _backends(args: argparse.Namespace) -> int:
    from ._plugins import backend_infos, get_plugin_manager

    infos = backend_infos(get_plugin_manager())
    rows = [("NAME", "PLUGIN", "DISTRIBUTION", "DESCRIPTION")]
    rows += [(i.name, i.plugin, _distribution(i), i.description) for i in infos]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[3]]).rstrip())
    return EXIT_OK


def _distribution(info: BackendInfo) -> str:
    """``name version`` of the installed distribution; ``-`` when none is installed."""
    if info.distribution is None:
        return "-"
    try:
        version = metadata.version(info.distribution)
    except metadata.PackageNotFoundError:
        return "-"  # running from a source tree: nothing of that name is installed
    return f"{info.distribution} {version}"


# -- building backends without a server ------------------------------------------


def _build_backend(name: str, config_path: Path | None) -> Backend:
    """A configured backend ``name``; without one, plugin ``name`` with default settings."""
    from ._plugins import backend_factories, get_plugin_manager

    settings: BackendSettings | None = None
    if config_path is not None:
        settings = load_config(config_path).backends.get(name)
    pm = get_plugin_manager()
    if settings is None:
        factories = backend_factories(pm)
        if name not in factories:
            known = ", ".join(sorted(factories))
            where = "configured or a plugin" if config_path else "a plugin"
            raise CLIError(f"no backend {name!r} is {where} (plugins: {known})")
        settings = BackendSettings(plugin=name)
    return _build({name: settings}, pm)[0]


def _build(settings: Mapping[str, BackendSettings], pm: PluginManager) -> list[Backend]:
    """The backends of ``settings``; a plugin refusing its settings is a one-line error."""
    from ._plugins import build_backends

    try:
        return list(build_backends(settings, pm, BackendContext()).values())
    except (ValueError, TypeError, OSError) as exc:
        raise CLIError(str(exc)) from None


def _configured_backends(config: Config) -> list[Backend]:
    from ._plugins import get_plugin_manager

    return _build(config.backends, get_plugin_manager())
