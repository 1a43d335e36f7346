#!/usr/bin/env python3
"""tests/docs/check_docs.py - the documentation's links and examples stay true.

    check_docs.py links    SOURCE_DIR   every relative link resolves
    check_docs.py examples SOURCE_DIR   every redis-cli/curl example is marked
    (tests/docs/run_examples.py runs the blocks marked runs-on-demo)

Pages checked: README.md, CHANGELOG.md, bench/README.md and docs/*.md.

links: docs/README.md links every page of docs/; every relative Markdown link ([text](path),
![alt](path), [ref]: path) and HTML href/src outside code names a file or directory that exists; a #fragment must be a heading
of the target page under GitHub's anchor rules (the heading's text, lower-cased, with every
character that is not a letter, digit, space, '-' or '_' removed and spaces turned into
'-'; a repeated slug gets -1, -2, ...) or an explicit id/name attribute in it. External
links (http:, https:, mailto:) are not fetched.

examples: a fenced code block that runs `redis-cli` or `curl` must be preceded (blank lines
allowed) by an HTML comment naming how it is meant:
    <!-- runs-on-demo -->   run by tests/docs/run_examples.py (ctest docs_examples_run)
                            against the state scripts/demo.sh builds
    <!-- illustrative -->   values and ids stand for the reader's own; not run by a test
Text after the word (": why") is free. Unmarked blocks are listed with file:line and the
check fails.

Python 3 standard library only; exits 0 when clean, 1 with one line per problem.
"""
import os
import re
import sys
import unicodedata

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HTML_ATTR = re.compile(r"\b(?:href|src)\s*=\s*\"([^\"]*)\"")
HTML_ID = re.compile(r"\b(?:id|name)\s*=\s*\"([^\"]*)\"")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
MARKER = re.compile(r"^\s*<!--\s*(illustrative|runs-on-demo)\b.*-->\s*$")
RUNS_TOOL = re.compile(r"(^|[\s;&|($])(redis-cli|curl)(\s|$)")


def pages(src):
    out = [os.path.join(src, p) for p in ("README.md", "CHANGELOG.md",
                                            os.path.join("bench", "README.md"))]
    docs = os.path.join(src, "docs")
    out += sorted(os.path.join(docs, f) for f in os.listdir(docs) if f.endswith(".md"))
    return [p for p in out if os.path.isfile(p)]


def split_lines(path):
    """Yields (line number, text, in_code) for every line; fence lines count as code."""
    fence = None
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            m = FENCE.match(line)
            if fence is None and m:
                fence = m.group(1)[0] * len(m.group(1))
                yield n, line, True
                continue
            if fence is not None:
                if line.strip().startswith(fence) and line.strip().strip(fence[0]) == "":
                    fence = None
                yield n, line, True
                continue
            yield n, line, False


def heading_text(raw):
    """The rendered text of a heading: code spans keep their content, links their text,
    emphasis markers and HTML tags go."""
    t = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", raw)
    t = re.sub(r"<[^>]+>", "", t)
    t = re.sub(r"(`+)((?:(?!\1).)+?)\1", lambda m: m.group(2).strip(), t)
    t = re.sub(r"(\*{1,3}|(?<!\w)_{1,3})(\S(?:.*?\S)?)\1", r"\2", t)
    return t


def slug(text):
    out = []
    for ch in text.lower():
        cat = unicodedata.category(ch)
        if ch in " -_" or cat[0] in "LNM" or cat == "Pc":
            out.append("-" if ch == " " else ch)
    return "".join(out)


_anchor_cache = {}


def anchors(path):
    if path in _anchor_cache:
        return _anchor_cache[path]
    seen = {}
    result = set()
    for _, line, code in split_lines(path):
        if code:
            continue
        for m in HTML_ID.finditer(line):
            result.add(m.group(1))
        m = HEADING.match(line)
        if not m:
            continue
        s = slug(heading_text(m.group(2)))
        if s in seen:
            seen[s] += 1
            result.add("%s-%d" % (s, seen[s]))
        else:
            seen[s] = 0
            result.add(s)
    _anchor_cache[path] = result
    return result


def check_links(src):
    problems = []
    for page in pages(src):
        rel = os.path.relpath(page, src)
        for n, line, code in split_lines(page):
            if code:
                continue
            text = CODE_SPAN.sub("", line)
            targets = [m.group(1) for m in INLINE_LINK.finditer(text)]
            m = REF_DEF.match(text)
            if m:
                targets.append(m.group(1))
            targets += [m.group(1) for m in HTML_ATTR.finditer(text)]
            for t in targets:
                if not t or re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I):
                    continue
                path_part, _, frag = t.partition("#")
                target = page if not path_part else os.path.normpath(
                    os.path.join(os.path.dirname(page), path_part))
                if not os.path.exists(target):
                    problems.append("%s:%d: link to %s: no such file" % (rel, n, t))
                    continue
                if frag and target.endswith(".md") and os.path.isfile(target):
                    if frag not in anchors(target):
                        problems.append("%s:%d: link to %s: no heading #%s in %s"
                                        % (rel, n, t, frag, os.path.relpath(target, src)))
    index = os.path.join(src, "docs", "README.md")
    if os.path.isfile(index):
        text = open(index, encoding="utf-8").read()
        for page in pages(src):
            name = os.path.basename(page)
            if os.path.dirname(page) == os.path.dirname(index) and name != "README.md" \
                    and "(%s)" % name not in text:
                problems.append("docs/README.md: no line for docs/%s" % name)
    return problems


def blocks(page):
    """Yields (line of the opening fence, marker, [(line number, text)]) for every fenced
    block; marker is "illustrative", "runs-on-demo" or None, from an HTML comment on the
    last non-blank line before the fence."""
    last_text = ""
    cur = None
    for n, line, code in split_lines(page):
        if code and cur is None:
            m = MARKER.match(last_text)
            cur = (n, m.group(1) if m else None, [])
            continue
        if cur is not None:
            if FENCE.match(line):  # the closing fence
                yield cur
                cur = None
                last_text = ""
            else:
                cur[2].append((n, line))
            continue
        if line.strip():
            last_text = line
    if cur is not None:
        yield cur


def check_examples(src):
    problems = []
    for page in pages(src):
        rel = os.path.relpath(page, src)
        for start, marker, lines in blocks(page):
            runs = False
            for _, line in lines:
                command = "" if line.lstrip().startswith("#") else line.split(" # ", 1)[0]
                runs = runs or bool(RUNS_TOOL.search(command))
            if runs and marker is None:
                problems.append("%s:%d: redis-cli/curl example not marked <!-- illustrative -->"
                                " or <!-- runs-on-demo -->" % (rel, start))
    return problems


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("links", "examples"):
        sys.stderr.write("usage: check_docs.py links|examples SOURCE_DIR\n")
        return 2
    src = sys.argv[2]
    problems = check_links(src) if sys.argv[1] == "links" else check_examples(src)
    for p in problems:
        print(p)
    checked = ", ".join(os.path.relpath(p, src) for p in pages(src))
    print("%s: %d problem(s) in %s" % (sys.argv[1], len(problems), checked))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
