"""Error messages of the ``jaxcnn`` command, in the command line's own terms.

The library speaks in config fields (``decay_epochs``, ``lr``); on the command
line the same setting is a flag (``--decay-epochs``, ``--lr``). Rather than a
second copy of every message, :func:`in_flag_terms` rewrites a message with
the field -> flag table read from the parser itself (:func:`flag_names`), so
it follows whatever flags the parser defines.

:func:`format_error` keeps a multi-line explanation (a list of places looked
at, one per line) as lines, each continuation indented under the first line.
"""
from __future__ import annotations

import argparse
import re


def flag_names(parser: argparse.ArgumentParser) -> dict[str, str]:
    """``{dest: "--flag"}`` for every long option of ``parser`` (``--no-X`` forms skipped)."""
    flags = {}
    for action in parser._actions:  # argparse has no public list of actions
        longs = [s for s in action.option_strings if s.startswith("--") and not s.startswith("--no-")]
        if longs and action.dest not in flags:
            flags[action.dest] = longs[0]
    return flags


# A config field as a word of a message: not part of a path, file name or longer identifier.
_AFTER = r"(?![\w/\-'\"])"
# ``name=value`` as a setting, not as a keyword argument inside a quoted call ``f(a, name=None)``.
_SETTING = r"(?<![\w/.\-'\"(])(?<!, )"


def in_flag_terms(message: str, flags: dict[str, str]) -> str:
    """``message`` with config field names written as the flags that set them.

    - ``field=(30, 60)`` -> ``--field 30,60``; ``field=True`` -> ``--field``;
      ``field=False`` -> ``--no-field``; ``field=X`` -> ``--field X``;
    - a field name with an underscore (``decay_epochs``) -> its flag wherever
      it stands as a word;
    - a one-word field (``lr``, ``epochs``) -> its flag where it is used as a
      name: at the start of the message or of a clause, or after
      ``change``/``needs``/``than``/``by``/``<``, and before ``must``, ``(``,
      ``needs``, ``applies``, ``<`` or ``>``.
    """
    for field in sorted(flags, key=len, reverse=True):
        flag, name = flags[field], re.escape(field)
        message = re.sub(
            _SETTING + name + r"=\(([^)]*)\)",
            lambda m, flag=flag: f"{flag} {','.join(v.strip() for v in m.group(1).split(',') if v.strip())}",
            message)
        message = re.sub(_SETTING + name + r"=True\b", flag, message)
        message = re.sub(_SETTING + name + r"=False\b", "--no-" + flag[2:], message)
        message = re.sub(_SETTING + name + r"=(?=\S)", flag + " ", message)
        if "_" in field:
            message = re.sub(_SETTING + name + _AFTER, flag, message)
        else:
            message = re.sub(r"(^|[;:] |change |needs |than |by |< |> )" + name + r"(?= must| \(| needs| applies| [<>])",
                             lambda m, flag=flag: m.group(1) + flag, message)
    return message


def format_error(command: str, error: BaseException, flags: dict[str, str] | None = None) -> str:
    """``jaxcnn COMMAND: error: MESSAGE``; a message of several lines keeps them, indented.

    Runs of spaces inside a line are kept; blank lines are dropped.
    """
    text = str(error)
    if flags:
        text = in_flag_terms(text, flags)
    lines = [line.rstrip() for line in text.splitlines() if line.strip()] or [type(error).__name__]
    head = f"jaxcnn {command}: error: {lines[0]}"
    return "\n".join([head, *("  " + line if not line.startswith(" ") else line
                             for line in lines[1:])])
