#!/usr/bin/env python3
"""Checks every relative link in the repository's Markdown files: the file it names exists,
and its #anchor is one GitHub generates for a heading of that file.

    python3 docs/check_links.py        # exit 0 when every link resolves, 1 otherwise
"""
import pathlib
import re
import subprocess
import sys
import unicodedata

ROOT = pathlib.Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# [text](target) and ![alt](target); the target ends at whitespace or ')'.
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"`[^`]*`")
# Files the docs link to that are announced but not written yet: reported, not counted as
# broken, until they exist (then their links and anchors are checked like any other).
PENDING: set[str] = set()


def markdown_files():
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / line for line in out.splitlines() if (ROOT / line).is_file()]


def prose_lines(text):
    """The lines outside fenced code blocks, with their numbers."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def heading_text(raw):
    """A heading as GitHub renders it to text: links become their text, emphasis and code
    marks go."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", raw)
    text = text.replace("`", "")
    text = re.sub(r"(\*\*|__|\*)", "", text)
    return text


def slug(text):
    """GitHub's anchor for a heading (github-slugger): lowercase, drop every character that
    is not a letter, mark, number, connector punctuation, space or '-', spaces to '-'."""
    kept = []
    for ch in text.lower():
        cat = unicodedata.category(ch)
        if ch == " ":
            kept.append("-")
        elif ch == "-" or cat[0] in "LMN" or cat == "Pc":
            kept.append(ch)
    return "".join(kept)


def anchors(path, cache={}):
    if path not in cache:
        seen = {}
        found = set()
        for _, line in prose_lines(path.read_text()):
            m = HEADING.match(line)
            if not m:
                continue
            base = slug(heading_text(m.group(2)))
            n = seen.get(base, 0)
            found.add(base if n == 0 else f"{base}-{n}")
            seen[base] = n + 1
        cache[path] = found
    return cache[path]


def main():
    broken = 0
    checked = 0
    for source in markdown_files():
        for number, line in prose_lines(source.read_text()):
            for target in LINK.findall(INLINE_CODE.sub("", line)):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
                    continue
                checked += 1
                file_part, _, anchor = target.partition("#")
                dest = (source.parent / file_part).resolve() if file_part else source
                where = f"{source.relative_to(ROOT)}:{number}: {target}"
                if not dest.exists() and dest.relative_to(ROOT).as_posix() in PENDING:
                    print(f"{where}: pending (not written yet)")
                elif not dest.exists():
                    print(f"{where}: no such file")
                    broken += 1
                elif anchor:
                    if dest.suffix != ".md":
                        print(f"{where}: an anchor into a file that is not Markdown")
                        broken += 1
                    elif anchor not in anchors(dest):
                        print(f"{where}: no heading with the anchor #{anchor} in {dest.relative_to(ROOT)}")
                        broken += 1
    print(f"{checked} links checked, {broken} broken")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
