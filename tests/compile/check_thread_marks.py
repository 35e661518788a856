#!/usr/bin/env python3
"""check_thread_marks — every function declared in the given headers says
which thread it runs on: the comment right above it (shared by prototypes
that follow it directly) holds "@thread loop", "@thread executor",
"@thread main" or "@thread any" (docs/HACKING.md, Threads).

    check_thread_marks.py HEADER...   exits 1 listing the unmarked ones
"""
import re
import sys

PROTO = re.compile(r"^(?!typedef\b|return\b|extern\b\s*\"C\")[A-Za-z_][\w \t\*]*?\b([a-z_]\w*)\s*\(")
MARK = re.compile(r"@thread\s+(loop|executor|main|any)\b")


def unmarked(path):
    found = []
    depth = 0          # braces outside comments: inside a struct, enum or inline body
    in_comment = False
    comment = ""
    marked = False     # the comment above the current run of prototypes had a mark
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        code = ""
        i = 0
        while i < len(line):
            if in_comment:
                end = line.find("*/", i)
                if end < 0:
                    comment += line[i:]
                    break
                comment += line[i:end]
                in_comment = False
                marked = MARK.search(comment) is not None
                i = end + 2
            elif line.startswith("/*", i):
                in_comment, comment = True, ""
                i += 2
            elif line.startswith("//", i):
                break
            else:
                code += line[i]
                i += 1
        stripped = code.strip()
        if depth == 0 and not in_comment:
            if stripped == "" and line.strip() == "":
                marked = False
            elif stripped.startswith(("#", "typedef", "struct", "enum", "union")):
                marked = False
            else:
                m = PROTO.match(code)
                if m and not marked:
                    found.append(f"{path}:{n}: {m.group(1)} has no @thread mark")
        depth += code.count("{") - code.count("}")
    return found


def main(paths):
    if not paths:
        print("check_thread_marks: no headers given", file=sys.stderr)
        return 2
    problems = [p for path in paths for p in unmarked(path)]
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} function(s) without a thread mark (docs/HACKING.md, Threads)")
        return 1
    print(f"{len(paths)} headers: every function says its thread")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
