#!/usr/bin/env python3
"""How many orgs one stack holds: the limits template.yaml meets as Organizations grows.

It writes a copy of template.yaml (in a temporary directory) whose Organizations default is N
generated org names (org-00000123, padded to --name-length), runs the SAM venv's cfn-lint on
it, and reports, for N orgs with the template's defaults (or --set overrides):

  - resources: as CloudFormation counts them against its 500 per stack, in the processed
    template: Fn::ForEach expanded (SAM CLI's language extensions, the parameters applied),
    each AWS::Serverless::Function as what SAM makes of it (the function, its
    EventInvokeConfig, a role when none is given), and every declared resource, whether its
    Condition holds or not; and how many of them a deploy creates (Conditions evaluated);
  - whether cfn-lint passes (its E3010 is the resource limit, after its own expansion) and
    how long it took;
  - the length of the Organizations value (CloudFormation caps a parameter value at 4,096
    bytes) and the size of the collector's environment (Lambda caps all variables together at
    4 KB; DOCKERHUB_AUDIT_ORGS holds the joined list), with representative values for what
    CloudFormation generates (--stack-name, the physical names it derives from it);
  - which limit binds first.

    .venv-sam/bin/python scripts/scale.py --orgs 240
    .venv-sam/bin/python scripts/scale.py --find-limit --name-length 8

--find-limit bisects the largest N whose template cfn-lint passes, and computes the largest N
within each of the other limits (they grow linearly with N: no cfn-lint needed). Runs itself
under .venv-sam/bin/python when started with another Python (it needs SAM CLI's packages).
"""
import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
VENV_PYTHON = ROOT / ".venv-sam/bin/python"
CFN_LINT = ROOT / ".venv-sam/bin/cfn-lint"

try:
    from samcli.lib.cfn_language_extensions.sam_integration import expand_language_extensions
    from samcli.lib.intrinsic_resolver.intrinsics_symbol_table import IntrinsicsSymbolTable
    from samcli.yamlhelper import yaml_parse
except ImportError:
    # (The venv's python may be a symlink to this very interpreter: compare the prefix.)
    if VENV_PYTHON.exists() and pathlib.Path(sys.prefix).resolve() != (ROOT / ".venv-sam").resolve():
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), __file__, *sys.argv[1:]])
    raise

RESOURCE_LIMIT = 500  # resources per stack
PARAMETER_LIMIT = 4096  # bytes of one parameter value
ENV_LIMIT = 4096  # bytes of a Lambda function's environment variables, all together
REGION = "ap-southeast-5"  # one of the longest region names
ACCOUNT = "123456789012"


def org_names(n, length):
    """n distinct valid org names of exactly `length` characters: org-0…0<i>."""
    digits = length - len("org-")
    if digits < 1 or n > 10 ** digits:
        sys.exit(f"--name-length {length} cannot give {n} distinct names")
    return [f"org-{i:0{digits}d}" for i in range(n)]


def template_with(names, text, overrides=None):
    """template.yaml's text with Organizations defaulting to `names`, and each parameter of
    `overrides` to its value (so that cfn-lint, which expands with the defaults, sees them)."""
    for name, value in {**(overrides or {}), "Organizations": ",".join(names)}.items():
        block = re.search(rf"^  {re.escape(name)}:\n(?:    .*\n|\s*\n)+", text, re.M)
        assert block, f"no parameter {name}"
        line = "    Default: " + json.dumps(value)
        new_block, count = re.subn(r"^    Default: .*$", line, block.group(0), count=1, flags=re.M)
        if count == 0:
            new_block, count = re.subn(r"^(    Type: .*)$", r"\1\n" + line.replace("\\", "\\\\"),
                                       block.group(0), count=1, flags=re.M)
        assert count == 1, f"no Type in parameter {name}"
        text = text[:block.start()] + new_block + text[block.end():]
    return text


def parameters(template, names, overrides):
    """The parameter values of a deploy: defaults, Organizations, --set."""
    values = {k: p.get("Default") for k, p in template.get("Parameters", {}).items()}
    values.update(overrides)
    values["Organizations"] = ",".join(names)
    return {k: ("" if v is None else str(v)) for k, v in values.items()}


def expand(text, params):
    """The resources after Fn::ForEach, as `sam deploy` hands them to CloudFormation's transforms."""
    symbols = dict(IntrinsicsSymbolTable.DEFAULT_PSEUDO_PARAM_VALUES)
    symbols.update(params)
    return expand_language_extensions(yaml_parse(text), symbols, enabled=True).expanded_template


def sam_count(resource):
    """How many CloudFormation resources SAM makes of one (this template's kinds)."""
    if resource.get("Type") != "AWS::Serverless::Function":
        return 1
    props = resource.get("Properties", {})
    extra = 0
    if "EventInvokeConfig" in props:
        extra += 1  # AWS::Lambda::EventInvokeConfig
    if "Role" not in props:
        extra += 1  # the role SAM creates
    if props.get("Events") or props.get("AutoPublishAlias") or props.get("FunctionUrlConfig"):
        sys.exit("scale.py does not know how many resources SAM makes of events, aliases or URLs")
    return 1 + extra


class Resolver:
    """Intrinsics of the environment values, for a representative deployment."""

    def __init__(self, template, params, stack):
        self.template = template
        self.params = params
        self.stack = stack
        self.conditions = template.get("Conditions", {})
        self.cache = {}
        suffix = "ABCDEFGHIJKLM"  # CloudFormation's random part of a generated name (12-13)
        self.physical = {
            # Ref of the resources the environments name, as CloudFormation returns them.
            "Table": f"{stack}-Table-{suffix}",
            "Bucket": f"{stack}-bucket-{suffix.lower()}",
            "Compactor": f"{stack}-Compactor-{suffix}",
            "AlarmTopic": f"arn:aws:sns:{REGION}:{ACCOUNT}:{stack}-AlarmTopic-{suffix}",
            "AlertEventBus": f"{stack}-alerts",
        }

    def condition(self, name):
        if name not in self.cache:
            self.cache[name] = self.truth(self.conditions[name])
        return self.cache[name]

    def truth(self, node):
        (fn, args), = node.items()
        if fn == "Fn::Equals":
            a, b = (self.value(x) for x in args)
            return str(a) == str(b)
        if fn == "Fn::Not":
            return not self.truth(args[0])
        if fn == "Fn::And":
            return all(self.truth(x) for x in args)
        if fn == "Fn::Or":
            return any(self.truth(x) for x in args)
        if fn == "Condition":
            return self.condition(args)
        raise ValueError(f"condition function {fn}")

    def value(self, node):
        if isinstance(node, (str, int, float, bool)):
            return str(node) if not isinstance(node, str) else node
        if isinstance(node, list):
            return [self.value(x) for x in node]
        (fn, args), = node.items()
        if fn == "Ref":
            return self.ref(args)
        if fn == "Fn::If":
            return self.value(args[1] if self.condition(args[0]) else args[2])
        if fn == "Fn::Join":
            items = self.value(args[1])
            return args[0].join(x for x in (items if isinstance(items, list) else [items]) if x is not None)
        if fn == "Fn::Sub":
            text, local = (args, {}) if isinstance(args, str) else (args[0], args[1])
            scope = {k: self.value(v) for k, v in local.items()}
            return re.sub(r"\$\{(!?)([\w:.]+)\}",
                          lambda m: "${" + m.group(2) + "}" if m.group(1) else str(
                              scope[m.group(2)] if m.group(2) in scope else self.ref(m.group(2))), text)
        raise ValueError(f"function {fn} in an environment value")

    def ref(self, name):
        if name == "AWS::NoValue":
            return None
        pseudo = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws",
                  "AWS::StackName": self.stack, "AWS::URLSuffix": "amazonaws.com"}
        if name in pseudo:
            return pseudo[name]
        if name in self.params:
            kind = self.template["Parameters"][name].get("Type", "String")
            value = self.params[name]
            return value.split(",") if kind == "CommaDelimitedList" else value
        if name == "GlueDatabase":
            return self.params.get("GlueDatabaseName", "dockerhub_audit")
        if name == "GlueTable":
            return self.template["Resources"]["GlueTable"]["Properties"]["TableInput"]["Name"]
        if name in self.physical:
            return self.physical[name]
        raise ValueError(f"no representative value for Ref {name}")


def environment(template, params, stack, function):
    """The function's environment variables, resolved (NoValue ones left out)."""
    r = Resolver(template, params, stack)
    variables = template["Resources"][function]["Properties"]["Environment"]["Variables"]
    out = {}
    for k, v in variables.items():
        value = r.value(v)
        if value is not None:
            out[k] = value
    return out


def env_sizes(env):
    """(keys and values, as Lambda's JSON request carries them) in bytes."""
    plain = sum(len(k.encode()) + len(v.encode()) for k, v in env.items())
    as_json = len(json.dumps(env, separators=(",", ":")).encode())
    return plain, as_json


def created(template, params, stack, resources):
    r = Resolver(template, params, stack)
    return sum(sam_count(res) for res in resources.values()
               if "Condition" not in res or r.condition(res["Condition"]))


def measure(text, names, overrides, stack, lint=True):
    """Everything scale.py reports for one list of orgs."""
    base = yaml_parse(text)
    params = parameters(base, names, overrides)
    resources = expand(text, params)["Resources"]
    result = {
        "orgs": len(names),
        "name_length": len(names[0]) if names else 0,
        "declared": sum(sam_count(r) for r in resources.values()),
        "created": created(base, params, stack, resources),
        "organizations_bytes": len(params["Organizations"].encode()),
    }
    for function, key in [("Function", "collector_env"), ("Compactor", "compactor_env")]:
        env = environment(base, params, stack, function)
        plain, as_json = env_sizes(env)
        result[key] = {"keys_and_values": plain, "json": as_json, "variables": len(env),
                       "orgs_value": len(env.get("DOCKERHUB_AUDIT_ORGS", "").encode())}
    if lint:
        result.update(cfn_lint(template_with(names, text, overrides)))
    return result


def cfn_lint(text):
    with tempfile.TemporaryDirectory(prefix="scale-") as tmp:
        path = pathlib.Path(tmp) / "template.yaml"
        path.write_text(text)
        start = time.monotonic()
        run = subprocess.run([str(CFN_LINT), str(path)], capture_output=True, text=True)
        seconds = time.monotonic() - start
    output = (run.stdout + run.stderr).strip()
    e3010 = re.search(r"^E3010 .*$", output, re.M)
    return {"cfn_lint_passes": run.returncode == 0, "cfn_lint_rc": run.returncode,
            "cfn_lint_seconds": round(seconds, 1), "cfn_lint_e3010": e3010.group(0) if e3010 else None,
            "cfn_lint_output": output[:2000]}


def binding(result):
    """Which limits a measured result exceeds."""
    over = []
    if result["declared"] > RESOURCE_LIMIT:
        over.append(f"resources {result['declared']} > {RESOURCE_LIMIT}")
    if result["organizations_bytes"] > PARAMETER_LIMIT:
        over.append(f"Organizations {result['organizations_bytes']} B > {PARAMETER_LIMIT}")
    for key in ["collector_env", "compactor_env"]:
        if result[key]["json"] > ENV_LIMIT:
            over.append(f"{key} {result[key]['json']} B (JSON) > {ENV_LIMIT}")
    if "cfn_lint_passes" in result and not result["cfn_lint_passes"]:
        over.append("cfn-lint fails")
    return over


def largest(fits, lo, hi):
    """The largest n in [lo, hi] with fits(n), fits monotone (fits(lo) assumed)."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def find_limit(text, length, overrides, stack, hi):
    limit = 10 ** (length - len("org-"))
    hi = min(hi, limit)
    cheap = {}

    def fits_cheap(key, check):
        return largest(lambda n: check(measure(text, org_names(n, length), overrides, stack, lint=False)), 1, hi)
    cheap["resources"] = fits_cheap("resources", lambda r: r["declared"] <= RESOURCE_LIMIT)
    cheap["organizations_parameter"] = fits_cheap("param", lambda r: r["organizations_bytes"] <= PARAMETER_LIMIT)
    cheap["collector_env_json"] = fits_cheap("env", lambda r: r["collector_env"]["json"] <= ENV_LIMIT)
    cheap["collector_env_keys_and_values"] = fits_cheap(
        "env2", lambda r: r["collector_env"]["keys_and_values"] <= ENV_LIMIT)
    cheap["compactor_env_json"] = fits_cheap("env3", lambda r: r["compactor_env"]["json"] <= ENV_LIMIT)

    runs = []

    def lint_passes(n):
        r = cfn_lint(template_with(org_names(n, length), text, overrides))
        runs.append({"orgs": n, "passes": r["cfn_lint_passes"], "seconds": r["cfn_lint_seconds"],
                     "e3010": r["cfn_lint_e3010"]})
        print(f"  cfn-lint with {n} orgs: {'passes' if r['cfn_lint_passes'] else 'fails'} "
              f"({r['cfn_lint_seconds']} s){' ' + r['cfn_lint_e3010'] if r['cfn_lint_e3010'] else ''}",
              file=sys.stderr, flush=True)
        return r["cfn_lint_passes"]

    if not lint_passes(1):
        sys.exit("cfn-lint fails with a single org: fix the template first")
    # Bisect between the resource count's limit and just above it (cfn-lint's expansion
    # differs a little from CloudFormation's: conditional loops count twice, SAM resources once).
    top = min(hi, cheap["resources"] + 16)
    at_least = lint_passes(top)
    if at_least:
        lint_limit = top
    else:
        start = max(1, cheap["resources"] - 16)
        lo = start if start > 1 and lint_passes(start) else 1
        lint_limit = largest(lint_passes, lo, top - 1)
    cheap["cfn_lint"] = lint_limit
    first = min(cheap["resources"], cheap["organizations_parameter"], cheap["collector_env_json"],
                cheap["compactor_env_json"], lint_limit)
    binds = [k for k in ["collector_env_json", "compactor_env_json", "organizations_parameter", "resources",
                         "cfn_lint"] if cheap[k] == first]
    return {"name_length": length, "largest_orgs": cheap, "cfn_lint_at_least": at_least, "limit": first,
            "binds": binds, "cfn_lint_runs": runs}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orgs", type=int, default=240, help="how many orgs (default 240)")
    ap.add_argument("--name-length", type=int, default=12, help="characters per org name (default 12)")
    ap.add_argument("--find-limit", action="store_true", help="the largest N within each limit")
    ap.add_argument("--max", type=int, default=1000, help="--find-limit looks no higher (default 1000)")
    ap.add_argument("--set", action="append", default=[], metavar="PARAM=VALUE",
                    help="a parameter override (default: the template's defaults), repeatable")
    ap.add_argument("--stack-name", default="dockerhub-audit",
                    help="for the generated names in the environment (default dockerhub-audit)")
    ap.add_argument("--template", default=str(ROOT / "template.yaml"))
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args()
    overrides = dict(s.split("=", 1) for s in args.set)
    text = pathlib.Path(args.template).read_text()

    if args.find_limit:
        result = find_limit(text, args.name_length, overrides, args.stack_name, args.max)
        if args.json:
            print(json.dumps(result, indent=2))
            return
        print(f"org names of {args.name_length} characters, {overrides or 'defaults'}:")
        for k, v in result["largest_orgs"].items():
            more = " (or more: cfn-lint passed at the highest N tried)" if k == "cfn_lint" and result[
                "cfn_lint_at_least"] else ""
            print(f"  largest N within {k}: {v}{more}")
        print(f"  limit: {result['limit']} orgs, bound by {', '.join(result['binds'])}")
        times = [r["seconds"] for r in result["cfn_lint_runs"]]
        print(f"  cfn-lint: {len(times)} runs, {min(times)}-{max(times)} s each")
        return

    result = measure(text, org_names(args.orgs, args.name_length), overrides, args.stack_name)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    col, comp = result["collector_env"], result["compactor_env"]
    print(f"{result['orgs']} orgs of {result['name_length']} characters, {overrides or 'defaults'}:")
    print(f"  resources: {result['declared']} declared (limit {RESOURCE_LIMIT}), {result['created']} created")
    print(f"  Organizations value: {result['organizations_bytes']} bytes (limit {PARAMETER_LIMIT})")
    print(f"  collector environment: {col['json']} bytes as JSON, {col['keys_and_values']} keys and values, "
          f"{col['variables']} variables, DOCKERHUB_AUDIT_ORGS {col['orgs_value']} (limit {ENV_LIMIT})")
    print(f"  compactor environment: {comp['json']} bytes as JSON, {comp['keys_and_values']} keys and values "
          f"(limit {ENV_LIMIT})")
    print(f"  cfn-lint: {'passes' if result['cfn_lint_passes'] else 'FAILS'} in {result['cfn_lint_seconds']} s"
          + (f" ({result['cfn_lint_e3010']})" if result["cfn_lint_e3010"] else ""))
    if not result["cfn_lint_passes"]:
        print("    " + result["cfn_lint_output"].replace("\n", "\n    "))
    over = binding(result)
    print("  within every limit" if not over else "  over: " + "; ".join(over))
    sys.exit(1 if over else 0)


if __name__ == "__main__":
    main()
