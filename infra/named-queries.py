#!/usr/bin/env python3
"""Writes the Athena named queries of template.yaml from infra/queries/*.sql.

The .sql files are the single source: each becomes one AWS::Athena::NamedQuery whose
QueryString is the file verbatim, named after the file, described by its first comment line.
Run it after editing a query:  python3 infra/named-queries.py
With --check it changes nothing and exits 1 if the template is out of date (the tests do this).
"""
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
QUERIES = ROOT / "infra" / "queries"
BEGIN = "  # BEGIN named queries\n"
END = "  # END named queries\n"


def logical_id(stem: str) -> str:
    return "Query" + "".join(part.capitalize() for part in stem.split("-"))


def description(sql: str) -> str:
    lines = []
    for line in sql.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line[2:].strip())
    text = " ".join(lines)
    # CloudFormation limits descriptions to 1024 characters; keep them plain for YAML.
    return text[:1000].replace("'", "''")


def render() -> str:
    out = []
    for path in sorted(QUERIES.glob("*.sql")):
        sql = path.read_text()
        if not sql.endswith("\n") or "\t" in sql:
            sys.exit(f"{path}: end it with a newline and indent with spaces")
        out.append(f"  {logical_id(path.stem)}:\n")
        out.append("    Type: AWS::Athena::NamedQuery\n")
        out.append("    Condition: CreateNamedQueries\n")
        out.append("    Properties:\n")
        out.append(f"      Name: {path.stem}\n")
        out.append(f"      Description: '{description(sql)}'\n")
        out.append("      Database: !Ref GlueDatabase\n")
        out.append("      WorkGroup: !Ref WorkGroup\n")
        out.append("      QueryString: |\n")
        for line in sql.splitlines():
            out.append(f"        {line}\n" if line else "\n")
    return "".join(out)


def main() -> int:
    text = TEMPLATE.read_text()
    try:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
    except ValueError:
        sys.exit(f"{TEMPLATE}: the markers {BEGIN.strip()!r} and {END.strip()!r} are missing")
    new = head + BEGIN + render() + END + tail
    if "--check" in sys.argv[1:]:
        if new != text:
            print("template.yaml's named queries differ from infra/queries/*.sql: "
                  "run python3 infra/named-queries.py", file=sys.stderr)
            return 1
        return 0
    TEMPLATE.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
