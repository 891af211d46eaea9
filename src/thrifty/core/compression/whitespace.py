"""Whitespace and formatting normalisation that changes nothing but whitespace, and not even that
inside code, quoted strings or structured data.

Left exactly as they are: fenced code blocks (````` ``` ````` or ``~~~``, closed or not), inline
code, double-quoted strings, indented lines (an indented code block, YAML, a nested list), lines
with a tab or a ``|`` (TSV, tables), runs of lines with the same number of commas or semicolons
(CSV), and the whole text when it is JSON or markup. Elsewhere: trailing spaces are removed, runs
of spaces inside a line become one, three or more line breaks become two, and blank lines at the
start and trailing whitespace at the end go. Removing every whitespace character from the input
and from the output gives the same string.
"""

from __future__ import annotations

import json
import re

__all__ = ["normalise_whitespace"]

_PROTECTED = re.compile(
    r"(?:^|(?<=\n))[ \t]*(?P<fence>```|~~~).*?(?:\n[ \t]*(?P=fence)[^\n]*|\Z)"  # fenced block, to its close
    r"|`[^`\n]+`"  # inline code
    r'|"(?:[^"\\\n]|\\.)*"',  # a double-quoted string on one line
    re.DOTALL,
)
_INNER_RUN = re.compile(r"(?<=\S)[ ]{2,}(?=\S)")
_DELIMITERS = (",", ";")


def normalise_whitespace(text: str) -> str:
    if (
        "  " not in text
        and "\n\n\n" not in text
        and " \n" not in text
        and "\t\n" not in text
        and text[:1] != "\n"
        and text[-1:] not in (" ", "\n", "\t")
    ):
        return text  # nothing to normalise: the common case, decided without a regex
    if _is_structured(text):
        return text
    out: list[str] = []
    position = 0
    last_end = -1
    if "`" in text or '"' in text or "~~~" in text:  # else nothing can be protected: skip the scan
        for match in _PROTECTED.finditer(text):
            out.append(_plain(text[position : match.start()]))
            out.append(match.group(0))
            position = last_end = match.end()
    out.append(_plain(text[position:]))
    result = "".join(out)
    if result.startswith("\n"):
        result = result.lstrip("\n")
    if last_end != len(text):  # the end is plain text: trailing blank lines and spaces go
        result = _trim_end(result)
    return result if result.strip() else text


def _trim_end(text: str) -> str:
    """Drop trailing blank lines, and trailing spaces of the last line unless it is a kept line
    (indented or holding a tab): trimming would change what the next pass keeps."""
    lines = text.split("\n")
    while len(lines) > 1 and not lines[-1].strip():
        lines.pop()
    last = lines[-1]
    if not (last[:1] in (" ", "\t") or "\t" in last):
        lines[-1] = last.rstrip()
    return "\n".join(lines)


def _is_structured(text: str) -> bool:
    stripped = text.strip()
    if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
        try:
            json.loads(stripped)
        except ValueError:
            pass
        else:
            return True
    return stripped.startswith("<") and stripped.endswith(">") and "</" in stripped


def _plain(segment: str) -> str:
    """A stretch of text between protected parts. Its first line may continue a line begun before
    it, and its last line may continue into what follows: neither is treated as a whole line."""
    if not segment:
        return segment
    lines = segment.split("\n")
    last = len(lines) - 1
    kept = _kept(lines)
    for i, line in enumerate(lines):
        if kept[i]:
            continue
        squeezed = _INNER_RUN.sub(" ", line) if "  " in line else line
        lines[i] = squeezed.rstrip(" \t") if i < last else squeezed
    # Runs of two or more blank whole lines become one, unless code (kept lines) is on both sides.
    out: list[str] = []
    i = 0
    while i <= last:
        if 0 < i < last and lines[i] == "":
            j = i
            while j < last and lines[j] == "":
                j += 1
            run = j - i
            if run >= 2 and not (kept[i - 1] and kept[j]):
                out.append("")
            else:
                out.extend(lines[i:j])
            i = j
            continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


def _kept(lines: list[str]) -> list[bool]:
    """Lines left exactly as they are: indented, with a tab or a pipe, or tabular (three or more
    lines in a row with the same non-zero count of commas, or of semicolons). Blank lines are not
    kept (they are only ever merged)."""
    kept = [False] * len(lines)
    for i, line in enumerate(lines):
        if line.strip() and (line[:1] in (" ", "\t") or "\t" in line or "|" in line):
            kept[i] = True
    for delimiter in _DELIMITERS:
        if len(lines) < 3 or not any(delimiter in line for line in lines):
            continue  # no run of three lines with this delimiter
        counts = [line.count(delimiter) for line in lines]
        start = 0
        for i in range(1, len(lines) + 1):
            if i == len(lines) or counts[i] != counts[start]:
                if counts[start] > 0 and i - start >= 3:
                    for j in range(start, i):
                        kept[j] = True
                start = i
    return kept
