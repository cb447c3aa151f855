"""The build context as `docker build` sees it: the project's files less what .dockerignore excludes.

The matcher follows Docker's (moby/patternmatcher): one pattern a line, `#` comments, a leading `/`
and `./` dropped; `*` and `?` match within one path segment, `**` across any number of them, `[...]`
a class; `!pattern` re-includes; the last pattern that matches a path decides, and a pattern that
matches a folder matches everything under it. make remote-build packs these files for CodeBuild.
"""

import os
import posixpath
import re
from pathlib import Path

DOCKERIGNORE = ".dockerignore"


def _regex(pattern):
    """A Docker .dockerignore pattern as a regular expression over a relative POSIX path."""
    out, i = "^", 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            if pattern[i + 1 : i + 2] == "*":
                i += 1
                if pattern[i + 1 : i + 2] == "/":
                    i += 1
                if i + 1 == len(pattern):
                    out += ".*" if out == "^" else "(/.*)?"
                else:
                    out += "(.*/)?"
            else:
                out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out += re.escape(char)
            else:
                body = pattern[i + 1 : end]
                out += "[" + ("^" + body[1:] if body.startswith("^") else body) + "]"
                i = end
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(char)
        i += 1
    return re.compile(out + "$")


class DockerIgnore:
    def __init__(self, text):
        self.rules = []  # (regex, excludes, literal prefix of the pattern)
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            excludes = not line.startswith("!")
            pattern = posixpath.normpath(line if excludes else line[1:].strip()).lstrip("/")
            if pattern in (".", ""):
                continue
            prefix = re.split(r"[*?\[\\]", pattern, maxsplit=1)[0]
            self.rules.append((_regex(pattern), excludes, prefix))

    def excluded(self, path):
        """Whether the relative POSIX path is left out of the context."""
        parents = [path]
        while "/" in parents[-1]:
            parents.append(parents[-1].rsplit("/", 1)[0])
        verdict = False
        for regex, excludes, _ in self.rules:
            if any(regex.match(candidate) for candidate in parents):
                verdict = excludes
        return verdict

    def may_reinclude_under(self, folder):
        """Whether some `!pattern` could name a path under an excluded folder (then it is walked)."""
        folder += "/"
        return any(
            not excludes and (prefix.startswith(folder) or folder.startswith(prefix) or not prefix)
            for _, excludes, prefix in self.rules
        )


def context_files(root):
    """The relative POSIX paths of the files `docker build` sends from root, sorted."""
    root = Path(root)
    ignore_file = root / DOCKERIGNORE
    ignore = DockerIgnore(ignore_file.read_text() if ignore_file.is_file() else "")
    files = []
    for folder, subfolders, names in os.walk(root):
        relative = Path(folder).relative_to(root).as_posix()
        relative = "" if relative == "." else relative + "/"
        subfolders[:] = sorted(
            name
            for name in subfolders
            if not ignore.excluded(relative + name) or ignore.may_reinclude_under(relative + name)
        )
        for name in names:
            path = relative + name
            if not ignore.excluded(path) and (Path(folder) / name).is_file():
                files.append(path)
    return sorted(files)
