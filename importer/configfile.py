"""The config file (``--config FILE``, ``importer.run(config=...)``): a crontab line's options
written down, in TOML, read with the standard library.

Every option of ``run`` and ``plan`` is a key, spelt as its long option with underscores
(``--on-existing`` is ``on_existing``, ``--label`` is ``label``), in the top table and in named
``[profiles.NAME]`` tables (``--profile NAME`` lays one over the top table). The keys and their
types are not listed here: they are read off the command line's own parser
(``cli.build_parser``), so an option added there is a key here with no more work. An option
whose flag takes a number (``type=int``/``float``) wants a TOML number; a switch
(``store_true``) a boolean; a repeatable flag (``action="append"``) a list (or one string); any
other a string, turned into the option's value by the same ``type=`` and ``choices`` argparse
uses, so the pipeline gets from the file exactly what it would get from the flag.

The key never goes in the file: ``api_key_env = "VAR"`` names the environment variable that
holds it (default ``KIRIM_API_KEY``), and a value shaped like a key is refused without being
repeated. An unknown key, a wrong type or a value the option refuses is a ``UsageError``
naming the file, the line and the key: tomllib keeps no positions, so ``key_lines`` finds each
key's line with a small scanner of TOML's lexical structure (strings, multi-line strings,
comments, arrays and inline tables), run on a document tomllib has already accepted.

Precedence: a flag given on the command line (or a keyword of the Python API) wins over the
file, the profile over the file's top table, the file over the built-in defaults.
``resolve`` says where each value came from (``kirim-import config FILE``).
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from importer.errors import UsageError
from importer.redact import KEY_SHAPE

API_KEY_ENV = "api_key_env"  # the one key that is not an option: where the key is read from
DEFAULT_KEY_ENV = "KIRIM_API_KEY"
PROFILES = "profiles"
COMMANDS = ("run", "plan")
# Options of the command line that choose the file itself, or only make sense there.
_NOT_KEYS = frozenset({"config", "profile", "help", "version"})
# A command line option whose keyword in the Python API (``configure``) is spelt otherwise.
API_NAMES = {"label": "labels", "sync_label": "sync_labels"}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# --- where each key is written --------------------------------------------------------------

_TOKEN = re.compile(
    r'''(?P<nl>\n)|(?P<ws>[ \t\r]+)|(?P<comment>\#[^\n]*)
    |(?P<mlb>"""(?:[^\\]|\\[\s\S])*?"""(?:"{1,2}(?!"))?)
    |(?P<mll>\'\'\'[\s\S]*?\'\'\'(?:\'{1,2}(?!\'))?)
    |(?P<basic>"(?:[^"\\\n]|\\.)*")|(?P<literal>'[^'\n]*')
    |(?P<punct>[\[\]{}=,.])|(?P<bare>[^\s\[\]{}=,\#"'.]+)''',
    re.X,
)


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str
    text: str
    line: int


def _tokens(text: str) -> list[_Tok]:
    out, line = [], 1
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup or ""
        if kind not in ("ws", "comment"):
            out.append(_Tok(kind, m.group(), line))
        line += m.group().count("\n")
    return out


def _key_part(tok: _Tok) -> str:
    if tok.kind == "basic":
        value = tomllib.loads(f"k = {tok.text}")["k"]
        return str(value)
    if tok.kind == "literal":
        return tok.text[1:-1]
    return tok.text


class _Scanner:
    """Walks the tokens of a valid TOML document, noting the line of every key path."""

    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.pos = 0
        self.lines: dict[tuple[str, ...], int] = {}

    def _at(self, text: str) -> bool:
        return self.pos < len(self.toks) and self.toks[self.pos].text == text and (
            self.toks[self.pos].kind == "punct"
        )

    def _skip_newlines(self) -> None:
        while self.pos < len(self.toks) and self.toks[self.pos].kind == "nl":
            self.pos += 1

    def _key(self) -> tuple[tuple[str, ...], int]:
        line = self.toks[self.pos].line
        parts = [_key_part(self.toks[self.pos])]
        self.pos += 1
        while self._at("."):
            parts.append(_key_part(self.toks[self.pos + 1]))
            self.pos += 2
        return tuple(parts), line

    def _note(self, path: tuple[str, ...], line: int) -> None:
        for n in range(1, len(path) + 1):
            self.lines.setdefault(path[:n], line)

    def _value(self, path: tuple[str, ...]) -> None:
        if self._at("["):
            self.pos += 1
            while True:
                self._skip_newlines()
                if self._at("]"):
                    self.pos += 1
                    return
                if self._at(","):
                    self.pos += 1
                    continue
                self._value(path)
        elif self._at("{"):
            self.pos += 1
            while True:
                self._skip_newlines()
                if self._at("}"):
                    self.pos += 1
                    return
                if self._at(","):
                    self.pos += 1
                    continue
                parts, line = self._key()
                self.pos += 1  # the "="
                self._note(path + parts, line)
                self._value(path + parts)
        else:  # a scalar: a string, or bare tokens (3.14, a date and its time)
            while self.pos < len(self.toks):
                tok = self.toks[self.pos]
                if tok.kind == "nl" or (tok.kind == "punct" and tok.text in ",]}"):
                    return
                self.pos += 1

    def scan(self) -> dict[tuple[str, ...], int]:
        table: tuple[str, ...] = ()
        while True:
            self._skip_newlines()
            if self.pos >= len(self.toks):
                return self.lines
            if self._at("["):  # a table header, [name] or [[name]]
                line = self.toks[self.pos].line
                self.pos += 1
                if self._at("["):
                    self.pos += 1
                table, _ = self._key()
                while self._at("]"):
                    self.pos += 1
                self._note(table, line)
                continue
            parts, line = self._key()
            self.pos += 1  # the "="
            self._note(table + parts, line)
            self._value(table + parts)


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """The line (1-based) of every key path of a TOML document tomllib accepted: a table's is
    its header's (or its first dotted key's), a key's the line its name is on."""
    scanner = _Scanner(text)
    try:
        return scanner.scan()
    except (IndexError, tomllib.TOMLDecodeError):  # not expected on a valid document
        return scanner.lines


# --- the keys, from the command line's parser ------------------------------------------------


def _key_of(action: argparse.Action) -> str | None:
    long = [s for s in action.option_strings if s.startswith("--")]
    if not long:
        return None
    key = long[0][2:].replace("-", "_")
    return None if key in _NOT_KEYS else key


def command_actions(parser: argparse.ArgumentParser, command: str) -> dict[str, argparse.Action]:
    """``command``'s options by config key, in the order ``--help`` lists them."""
    for action in parser._actions:  # the subcommands: argparse keeps them only here
        if isinstance(action, argparse._SubParsersAction):
            sub = action.choices[command]
            return {k: a for a in sub._actions if (k := _key_of(a)) is not None}
    raise KeyError(command)


def _parser() -> argparse.ArgumentParser:
    from importer.cli import build_parser  # the keys are the command line's options

    return build_parser()


def _kind(action: argparse.Action) -> str:
    if action.nargs == 0:
        return "a boolean (true or false)"
    if action.type is int:
        return "a whole number"
    if action.type is float:
        return "a number"
    return "a string"


def _call(kind: Any, value: str) -> Any:
    return kind(value)


def _scalar(action: argparse.Action, value: Any) -> Any:
    """One TOML value as the option's value, as argparse would make it from the flag's text;
    raises ``ValueError`` with what was expected."""
    wanted = _kind(action)
    if action.nargs == 0:
        if not isinstance(value, bool):
            raise ValueError(f"expected {wanted}")
        return value
    if action.type in (int, float):
        kinds: tuple[type, ...] = (int,) if action.type is int else (int, float)
        if not isinstance(value, kinds) or isinstance(value, bool):
            raise ValueError(f"expected {wanted}")
        number: Any = value
        converted: Any = int(number) if action.type is int else float(number)
    else:
        if (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and not isinstance(action, argparse._AppendAction)
        ):
            value = str(value)  # max_invalid = 100, sheet = 2: the flag's text, as a number
        if not isinstance(value, str):
            raise ValueError(f"expected {wanted}")
        try:
            converted = value if action.type is None else _call(action.type, value)
        except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
            raise ValueError(str(exc) or f"not a value {action.dest} takes") from None
    if action.choices is not None and converted not in action.choices:
        raise ValueError(f"expected one of {', '.join(map(str, action.choices))}")
    return converted


def convert(action: argparse.Action, value: Any) -> Any:
    """A TOML value as the value the parsed flag would have (``ValueError``: why not)."""
    if isinstance(action, argparse._AppendAction):
        items = value if isinstance(value, list) else [value]
        return [_scalar(action, item) for item in items]
    if isinstance(value, list | dict):
        kind = "list" if isinstance(value, list) else "table"
        raise ValueError(f"expected {_kind(action)}, not a {kind}")
    return _scalar(action, value)


# --- loading ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Setting:
    """One value from the file: converted, and where it was written."""

    value: Any
    line: int | None
    profile: str | None  # None: the top table


@dataclass(frozen=True, slots=True)
class Loaded:
    """A config file read for one command and profile: its options (by key, converted), and
    the environment variable that holds the key."""

    path: Path
    profile: str | None
    settings: dict[str, Setting]
    api_key_env: Setting | None

    def where(self, setting: Setting) -> str:
        at = f"{self.path}:{setting.line}" if setting.line else str(self.path)
        table = _dotted((PROFILES, setting.profile)) if setting.profile else ""
        return f"file {at}" + (f" [{table}]" if table else "")

    @property
    def key_env(self) -> str:
        return DEFAULT_KEY_ENV if self.api_key_env is None else str(self.api_key_env.value)


def _walk(value: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, (*path, k))
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item, path)
    else:
        yield path, value


def _dotted(path: Sequence[str]) -> str:
    return ".".join(p if re.fullmatch(r"[A-Za-z0-9_-]+", p) else f'"{p}"' for p in path)


def load(path: Path | str, *, profile: str | None = None, command: str = "run") -> Loaded:
    """Read and check the whole file (every profile, so a mistake in one is found whichever
    is used), and take ``command``'s options from its top table and ``profile``."""
    file = Path(path)
    try:
        text = file.read_bytes().decode("utf-8")
    except OSError as exc:
        raise UsageError(f"--config {file}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise UsageError(f"--config {file}: not UTF-8 text (TOML is UTF-8)") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{file}: not valid TOML: {exc}") from None
    lines = key_lines(text)

    def fail(key_path: tuple[str, ...], message: str) -> UsageError:
        line = lines.get(key_path)
        return UsageError(f"{file}{f':{line}' if line else ''}: {message}")

    for key_path, value in _walk(data, ()):
        if isinstance(value, str) and KEY_SHAPE.search(value):
            raise fail(
                key_path,
                f"{_dotted(key_path)} holds what looks like a Kirim API key: the key is never "
                f"in the file; set {API_KEY_ENV} = \"VAR\" to name the environment variable "
                "that holds it",
            )
    parser = _parser()
    actions = command_actions(parser, command)
    known = {k: a for c in COMMANDS for k, a in command_actions(parser, c).items()}
    known.update(actions)  # a key both commands have: this command's way of reading it
    profiles = data.get(PROFILES, {})
    if not isinstance(profiles, dict):
        raise fail((PROFILES,), f"{PROFILES} must be tables: [{PROFILES}.NAME]")
    tables: list[tuple[str | None, dict[str, Any]]] = [
        (None, {k: v for k, v in data.items() if k != PROFILES})
    ]
    for name, table in profiles.items():
        if not isinstance(table, dict):
            raise fail((PROFILES, name), f"{PROFILES}.{name} must be a table: [{PROFILES}.{name}]")
        tables.append((name, table))
    if profile is not None and profile not in profiles:
        names = ", ".join(profiles) or "none"
        raise UsageError(f"--profile {profile}: {file} has no [{PROFILES}.{profile}] "
                         f"(its profiles: {names})")  # fmt: skip
    chosen: dict[str, Setting] = {}
    key_env: Setting | None = None
    for name, table in tables:
        base = () if name is None else (PROFILES, name)
        where = "" if name is None else f" in [{_dotted(base)}]"
        for key, value in table.items():
            line = lines.get((*base, key))
            if key == API_KEY_ENV:
                if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
                    raise fail((*base, key), f"{key}{where}: expected the name of an "
                               "environment variable, such as \"KIRIM_API_KEY\"")  # fmt: skip
                setting = Setting(value, line, name)
                if name is None or name == profile:
                    key_env = setting
                continue
            action = known.get(key)
            if action is None:
                raise fail((*base, key), _unknown(key, where, known))
            try:
                converted = convert(action, value)
            except ValueError as exc:
                raise fail((*base, key), f"{key}{where}: {exc}") from None
            if key in actions and (name is None or name == profile):
                chosen[key] = Setting(converted, line, name)
    return Loaded(file, profile, chosen, key_env)


def _unknown(key: str, where: str, known: dict[str, argparse.Action]) -> str:
    if KEY_SHAPE.search(key):
        return f"a key{where} looks like a Kirim API key (not shown): remove it"
    if key in ("api_key", "key", "kirim_api_key"):
        return (f"{key}{where}: the key is never in the file; set {API_KEY_ENV} = \"VAR\" "
                "to name the environment variable that holds it")  # fmt: skip
    if key == PROFILES:
        return f"{key}{where}: profiles do not nest"
    close = difflib.get_close_matches(key, [*known, API_KEY_ENV], n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown key {key!r}{where}{hint}: the keys are the options of run and plan, " \
        "spelt with underscores (on_existing for --on-existing)"


# --- the command line and the API ------------------------------------------------------------


def given_flags(argv: Sequence[str]) -> set[str]:
    """The options (by key) ``argv`` gives explicitly: parsed by a parser whose defaults are
    all left out, so what is in the namespace was typed."""
    parser = _parser()
    for command in COMMANDS:
        for action in command_actions(parser, command).values():
            action.default = argparse.SUPPRESS
    args, _ = parser.parse_known_args(list(argv))
    dests = set(vars(args))
    command = str(getattr(args, "command", ""))
    if command not in COMMANDS:
        return set()
    return {k for k, a in command_actions(parser, command).items() if a.dest in dests}


def _taken(command: str, key: str, setting: Setting) -> bool:
    """Whether ``command`` takes the file's value: a plan leaves out a ``state`` whose journal
    does not exist yet (one file serves run and plan, and the first run makes the journal;
    a plan's ``--state`` flag must name one that exists)."""
    return not (command == "plan" and key == "state" and not Path(setting.value).is_file())


def apply(args: argparse.Namespace, argv: Sequence[str]) -> Loaded | None:
    """Lay ``--config``'s values under the flags of parsed ``args`` (in place): each option
    the command line did not give takes the file's value."""
    config = getattr(args, "config", None)
    profile = getattr(args, "profile", None)
    if config is None:
        if profile is not None:
            raise UsageError("--profile needs --config FILE")
        return None
    loaded = load(config, profile=profile, command=args.command)
    given = given_flags(argv)
    actions = command_actions(_parser(), args.command)
    for key, setting in loaded.settings.items():
        if key not in given and _taken(args.command, key, setting):
            setattr(args, actions[key].dest, setting.value)
    return loaded


def locate(message: str, loaded: Loaded | None, given: Iterable[str]) -> str:
    """A message about an option's value (``--until '25:00': expected ...``, from
    ``configure``) as one about the file's line when the value came from the file and not
    from a flag or keyword: ``nightly.toml:4: until '25:00': expected ...``."""
    match = re.match(r"--([a-z][a-z0-9-]*)", message)
    if loaded is None or match is None:
        return message
    key = match.group(1).replace("-", "_")
    setting = loaded.settings.get(key)
    if setting is None or key in given:
        return message
    at = f"{loaded.path}:{setting.line}" if setting.line else str(loaded.path)
    table = f" in [{_dotted((PROFILES, setting.profile))}]" if setting.profile else ""
    return f"{at}: {key}{table}{message[match.end():]}"


def located(
    exc: UsageError, options: dict[str, Any], *, command: str
) -> UsageError:
    """The Python API's ``locate``: ``exc`` named at the config file's line when ``options``
    (the caller's keywords) hold ``config=`` and the option came from the file."""
    config = options.get("config")
    if config is None:
        return exc
    try:
        loaded = load(config, profile=options.get("profile"), command=command)
    except UsageError:
        return exc
    names = {v: k for k, v in API_NAMES.items()}
    given = {names.get(k, k) for k in options}
    return UsageError(locate(str(exc), loaded, given))


def api_options(
    config: Path | str, *, profile: str | None, command: str, given: dict[str, Any]
) -> dict[str, Any]:
    """The Python API's keywords: the file's (named as the API names them), under those the
    caller gave."""
    loaded = load(config, profile=profile, command=command)
    actions = command_actions(_parser(), command)
    options: dict[str, Any] = {}
    for key, setting in loaded.settings.items():
        dest = actions[key].dest
        if _taken(command, key, setting):
            options[API_NAMES.get(dest, dest)] = setting.value
    if loaded.api_key_env is not None:  # run's key, and plan's to check an account column
        options["api_key_env"] = loaded.api_key_env.value
    return {**options, **given}


# --- kirim-import config FILE -----------------------------------------------------------------


def _shown(key: str, value: Any) -> str:
    from importer.notify import masked_url  # a notify URL may hold a token in its path

    if value is None:
        return "(not set)"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_shown(key, v) for v in value) + "]"
    if key == "notify" and isinstance(value, str):
        return f'"{masked_url(value)}"'
    if isinstance(value, str) and "@" in value and "://" in value:  # user:password@ never shown
        value = re.sub(r"(://)[^/@]*@", r"\1…@", value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def resolve(
    config: Path | str, *, profile: str | None, command: str, argv: Sequence[str]
) -> list[str]:
    """``kirim-import config``'s lines: each option of ``command`` with its effective value
    and where it came from (a flag in ``argv``, the file, or the default). The key is never
    shown; only whether its variable is set."""
    loaded = load(config, profile=profile, command=command)
    parser = _parser()
    args, unknown = parser.parse_known_args([command, "-", *argv])
    if any(u.startswith("-") and u != "-" for u in unknown):  # a typo must not pass here
        raise UsageError(f"{command} has no such arguments: {' '.join(unknown)}")
    given = given_flags([command, "-", *argv])
    rows: list[tuple[str, str]] = []
    for key, action in command_actions(parser, command).items():
        setting = loaded.settings.get(key)
        if key in given:
            value, source = getattr(args, action.dest), "flag"
        elif setting is not None:
            value, source = setting.value, loaded.where(setting)
        else:
            value, source = action.default, "default"
        rows.append((f"{key} = {_shown(key, value)}", source))
    env = loaded.key_env
    state = "set" if os.environ.get(env, "").strip() else "NOT set"
    source = "default" if loaded.api_key_env is None else loaded.where(loaded.api_key_env)
    rows.insert(0, (f'{API_KEY_ENV} = "{env}"  (the key: {state} in the environment)', source))
    width = max(len(r[0]) for r in rows) + 2
    title = f"{command} options from {loaded.path}" + (
        f", profile {profile}" if profile else ""
    )
    return [title, *(f"  {text.ljust(width)}{source}" for text, source in rows)]
