"""Write ``docs/reference.md``: the command line and the Python API, from the code's own help and docstrings.

    python docs/make_reference.py           # rewrite docs/reference.md
    python docs/make_reference.py --check   # exit 1 when docs/reference.md is out of date (a test runs this)

The command line comes from the argparse parser of :mod:`mqtt_pki_lab.cli` (each command, its arguments and
their help), the API from :data:`mqtt_pki_lab.__all__` (each name's signature and the first paragraph of its
docstring). Nothing is written by hand, so the reference says what the code does.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
import sys
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "reference.md"
sys.path.insert(0, str(HERE.parent))  # this checkout's package, even when it is not installed

import mqtt_pki_lab  # noqa: E402
from mqtt_pki_lab.cli import build_parser  # noqa: E402

PROG = "mqtt-pki-lab"


def first_paragraph(doc: str | None) -> str:
    """The first paragraph of a docstring, on one line, its reST markup turned into Markdown."""
    text = " ".join(inspect.cleandoc(doc or "").split("\n\n", 1)[0].split())
    text = re.sub(r":[a-z]+:`~?(?:[\w.]+\.)?([^`]+)`", r"`\1`", text)  # :class:`~a.b.Lab` -> `Lab`
    return text.replace("``", "`")


def cell(text: str) -> str:
    """Text made safe for a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


# --- the command line ---------------------------------------------------------------------------------------

def subcommands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    """(name, help, parser) of each subcommand, in the order they were added."""
    for action in parser._actions:  # argparse has no public way to list them
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, helps.get(name, ""), sub


def argument_rows(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or action.help == argparse.SUPPRESS:
            continue
        metavar = action.metavar or (action.dest.upper() if action.option_strings else action.dest)
        takes_value = action.nargs != 0
        if action.option_strings:
            name = ", ".join(f"`{o} {metavar}`" if takes_value else f"`{o}`" for o in action.option_strings)
        else:
            name = f"`{metavar}`"
        if action.choices and not isinstance(action.choices, dict):
            name += " (" + ", ".join(f"`{c}`" for c in action.choices) + ")"
        help_text = (action.help or "") % {"default": action.default, "prog": parser.prog}
        rows.append(f"| {cell(name)} | {cell(help_text)} |")
    return rows


def cli_section(parser: argparse.ArgumentParser, path: str, level: int) -> list[str]:
    lines: list[str] = []
    for name, help_text, sub in subcommands(parser):
        command = f"{path} {name}"
        lines += [f"{'#' * level} `{command}`", "", help_text[:1].upper() + help_text[1:] + ".", ""]
        if sub.description and sub.description != help_text:
            lines += [first_paragraph(sub.description), ""]
        rows = argument_rows(sub)
        if rows:
            lines += ["| argument | meaning |", "|---|---|", *rows, ""]
        lines += cli_section(sub, command, level + 1)
    return lines


# --- the Python API -----------------------------------------------------------------------------------------

class _Source(str):
    """An annotation kept as the source text it was written as (``from __future__ import annotations``)."""

    def __repr__(self) -> str:
        return str(self)


def signature(obj: object, *, returns: bool = True) -> str:
    """``(arg: type = default, ...) -> type`` as written in the code, without quotes around the types."""
    try:
        sig = inspect.signature(obj)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    plain = [p.replace(annotation=_Source(p.annotation)) if isinstance(p.annotation, str) else p
             for p in sig.parameters.values()]
    back = sig.return_annotation
    back = _Source(back) if isinstance(back, str) else back
    sig = sig.replace(parameters=plain, return_annotation=back if returns else inspect.Signature.empty)
    return re.sub(r" at 0x[0-9a-f]+", "", str(sig))


def describe(name: str, obj: object) -> list[str]:
    """One list item: the name with its signature, and the first paragraph of its docstring."""
    if inspect.isclass(obj):
        kind = "exception" if issubclass(obj, BaseException) else "class"
        head = f"{kind} {name}{signature(obj, returns=False)}"
    elif callable(obj):
        head = f"{name}{signature(obj)}"
    else:
        if isinstance(obj, dict):
            shown = "a dict; its keys: " + ", ".join(f"`{k}`" for k in obj)
        elif isinstance(obj, (tuple, list)) and obj:
            shown = f"{type(obj).__name__} of {len(obj)} `{type(obj[0]).__name__}`"
        else:
            shown = f"`{obj!r}`"
        return [f"- `{name}`: {shown}"]
    doc = first_paragraph(obj.__doc__) if obj.__doc__ and obj.__doc__ is not type(obj).__doc__ else ""
    return [f"- `{head}`" + (f"  \n  {doc}" if doc else "")]


def api_section() -> list[str]:
    modules: dict[str, list[str]] = {}
    for name, module in mqtt_pki_lab._EXPORTS.items():
        modules.setdefault(module, []).append(name)
    lines: list[str] = []
    for module, names in modules.items():
        full = f"mqtt_pki_lab.{module}"
        found = importlib.import_module(full)
        lines += [f"### `{full}`", "", first_paragraph(found.__doc__), ""]
        for name in names:
            lines += describe(name, getattr(found, name))  # from its module: a submodule may share its name
        lines.append("")
    return lines


def reference() -> str:
    parser = build_parser()
    lines = [
        "# mqtt-pki-lab reference",
        "",
        "Generated from the code by `python docs/make_reference.py`: do not edit by hand.",
        "",
        f"## Command line: `{PROG}`",
        "",
        first_paragraph(parser.description),
        "",
        f"Also `python -m mqtt_pki_lab`. `{PROG} COMMAND --help` shows the same, in the terminal.",
        "",
        *cli_section(parser, PROG, 3),
        "## Python API: `import mqtt_pki_lab`",
        "",
        first_paragraph(mqtt_pki_lab.__doc__),
        "",
        "Every name below is importable from `mqtt_pki_lab` itself; `help(name)` shows its whole docstring.",
        "",
        *api_section(),
    ]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--check", action="store_true", help="exit 1 if docs/reference.md is out of date")
    args = options.parse_args(argv)
    text = reference()
    if args.check:
        current = REFERENCE.read_text(encoding="utf-8") if REFERENCE.exists() else ""
        if current != text:
            print(f"{REFERENCE} is out of date: run python docs/make_reference.py", file=sys.stderr)
            return 1
        return 0
    REFERENCE.write_text(text, encoding="utf-8")
    print(f"wrote {REFERENCE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
