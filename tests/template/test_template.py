"""Checks that template.yaml agrees with the code, the docs and infra/, offline.

Run by ./scripts/test with the SAM venv's Python (cfn-lint's parser reads the template's
short-form intrinsics): python -m unittest discover -s tests/template
"""
import base64
import json
import pathlib
import re
import shlex
import subprocess
import sys
import tomllib
import unittest

from cfnlint.decode import decode
from samcli.commands.validate.lib.exceptions import InvalidSamDocumentException
from samcli.lib.cfn_language_extensions.sam_integration import expand_language_extensions
from samcli.lib.intrinsic_resolver.intrinsics_symbol_table import IntrinsicsSymbolTable
from samcli.yamlhelper import yaml_parse

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEMPLATE, MATCHES = decode(str(ROOT / "template.yaml"))
RESOURCES = TEMPLATE["Resources"]
PARAMETERS = TEMPLATE["Parameters"]
# docs/aws.md: the deployment's parameters, alarms, teardown and IAM permissions.
AWS_DOC = (ROOT / "docs/aws.md").read_text()


def expanded(overrides):
    """The template as `sam build` and `sam deploy` expand it locally (SAM CLI's language
    extensions, with the pseudo parameters SAM CLI adds), given --parameter-overrides."""
    params = dict(IntrinsicsSymbolTable.DEFAULT_PSEUDO_PARAM_VALUES)
    params.update(overrides)
    template = yaml_parse((ROOT / "template.yaml").read_text())
    return expand_language_extensions(template, params, enabled=True).expanded_template


def overrides_of(text):
    """`A=b C="d e"` as SAM CLI reads --parameter-overrides."""
    return dict(pair.split("=", 1) for pair in shlex.split(text))


def allowed(parameter, value):
    """Whether CloudFormation accepts a parameter value: AllowedPattern matches the whole
    value, or each member of a CommaDelimitedList."""
    definition = PARAMETERS[parameter]
    members = value.split(",") if definition["Type"] == "CommaDelimitedList" else [value]
    return all(re.fullmatch(definition["AllowedPattern"], m) for m in members)


def is_org(name):
    """src/types.rs Org::new: non-empty, at most 255 bytes, lowercase ASCII letters, digits,
    '-' and '_', not starting with '-'."""
    return (0 < len(name.encode()) <= 255 and not name.startswith("-")
            and all(c in "abcdefghijklmnopqrstuvwxyz0123456789-_" for c in name))


def iam_like(pattern, value):
    """IAM's StringLike/ArnLike: * any run of characters, ? one character."""
    return re.fullmatch("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern),
                        value) is not None


def resources_of(kind):
    """(logical id, resource) of a type, looking inside Fn::ForEach fragments too."""
    for name, res in RESOURCES.items():
        if name.startswith("Fn::ForEach::"):
            for fragment_name, fragment in res[2].items():
                if fragment["Type"] == kind:
                    yield fragment_name, fragment
        elif res["Type"] == kind:
            yield name, res


def alarms_section():
    """docs/aws.md's "Alarms, and what to do when one fires", up to the next heading."""
    return AWS_DOC.split("### Alarms, and what to do when one fires\n", 1)[1].split("\n#", 1)[0]


def src_text():
    """Every Rust source file of the crate, concatenated."""
    return "\n".join(f.read_text() for f in sorted((ROOT / "src").rglob("*.rs")))


def rust_strings(path, const):
    """The string items of `pub const NAME: [&str; N] = [...]` in a Rust file."""
    text = (ROOT / path).read_text()
    m = re.search(rf"pub const {const}: \[&str; \d+\] = \[(.*?)\];", text, re.S)
    assert m, f"{const} not found in {path}"
    return re.findall(r'"([^"]+)"', m.group(1))


# The collector's actions for the watchdog alone (not the CLI's): reading every checkpoint,
# its message to the alarm topic, dispatching the verifications and compactions.
# (dynamodb:Scan is the CLI's too: `status --all`.)
WATCHDOG_ONLY = {"sns:Publish", "lambda:InvokeFunction"}

# How docs/aws.md writes what the template computes (see "IAM permissions").
PSEUDO = {"${AWS::Partition}": "aws", "${AWS::Region}": "<region>", "${AWS::AccountId}": "<account>"}
# The variables of Fn::Sub's second form.
# The variables of Fn::Sub's second form, and the Glue names (the view's is fixed).
SUB_VARS = {"${Name}": "<bucket>", "${Bus}": "<alert bus>", "${RulesObject}": "<rules bucket>/<rules key>",
            "${GlueDatabase}": "<database>", "${GlueTable}": "events"}
ATTS = {
    ("Function", "Arn"): "arn:aws:lambda:<region>:<account>:function:<function>",
    ("Compactor", "Arn"): "arn:aws:lambda:<region>:<account>:function:<compactor>",
    ("Table", "Arn"): "arn:aws:dynamodb:<region>:<account>:table/<table>",
    ("DeadLetterQueue", "Arn"): "arn:aws:sqs:<region>:<account>:<dead-letter queue>",
    ("FunctionLogGroup", "Arn"): "arn:aws:logs:<region>:<account>:log-group:<log group>:*",
    ("CompactorLogGroup", "Arn"): "arn:aws:logs:<region>:<account>:log-group:<compactor log group>:*",
}


def readable(resource):
    if isinstance(resource, str):
        return resource
    if isinstance(resource, list):
        # Several resources (or condition values): as docs/aws.md lists them.
        return ", ".join(readable(r) for r in resource)
    if "Fn::If" in resource:
        # The default deployment: the stack creates the resource.
        return readable(resource["Fn::If"][1])
    if "Fn::Sub" in resource:
        sub = resource["Fn::Sub"]
        text = sub if isinstance(sub, str) else sub[0]
        for k, v in PSEUDO.items():
            text = text.replace(k, v)
        for k, v in SUB_VARS.items():
            text = text.replace(k, v)
        return re.sub(r"\$\{(\w+)\}", r"<\1>", text)
    if "Fn::GetAtt" in resource:
        att = resource["Fn::GetAtt"]
        att = tuple(att.split(".")) if isinstance(att, str) else tuple(att)
        return ATTS[att]
    if "Ref" in resource:
        return REFS.get(resource["Ref"], f"<{resource['Ref']}>")
    raise AssertionError(f"unexpected resource form {resource}")


# Refs of resources whose Ref is an ARN, as docs/aws.md writes them.
REFS = {"AlarmTopic": "arn:aws:sns:<region>:<account>:<alarm topic>"}


def readable_condition(condition):
    """`Operator key=value` per condition key, `; `-separated, as docs/aws.md writes them;
    None without a condition."""
    if not condition:
        return None
    return "; ".join(f"{op} {key}={readable(value)}"
                     for op, keys in condition.items() for key, value in keys.items())


def attached_policies(role):
    """(logical id, resource) of the AWS::IAM::Policy resources attached to a role."""
    return [(name, res) for name, res in resources_of("AWS::IAM::Policy")
            if {"Ref": role} in res["Properties"]["Roles"]]


def role_statements(role="FunctionRole"):
    """The statements of a role (the collector's by default), the optional ones as when enabled,
    and those of the policies attached to it."""
    out = []
    documents = [p["Fn::If"][1] if "Fn::If" in p else p for p in RESOURCES[role]["Properties"]["Policies"]]
    documents += [res["Properties"] for _, res in attached_policies(role)]
    for policy in documents:
        for st in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in st:
                # A statement of an optional feature (alerts): the branch that has it.
                st = st["Fn::If"][1]
            out.append(st)
    return out


def actions_of(statement):
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


def function_statements(role="FunctionRole"):
    return [(frozenset(actions_of(st)), readable(st["Resource"]), readable_condition(st.get("Condition")))
            for st in role_statements(role)]


def documented_statements(heading):
    """The rows of the IAM table under a heading of docs/aws.md, as function_statements."""
    section = AWS_DOC.split(heading + "\n", 1)[1].split("\n#", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0].startswith("`") and ":" in cells[0]:
            actions = frozenset(a.strip(" `") for a in cells[0].split(","))
            rows.append((actions, cells[1].replace("`", ""), cells[2].replace("`", "") or None))
    return rows


# A deployment as CloudFormation would resolve it: the stack creates the bucket and table,
# with these names (the DDL's placeholders for the bucket and prefix).
DEPLOYED = {
    "AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012",
    "Organizations": ["acme", "example"], "Bucket": "BUCKET", "KeyPrefix": "PREFIX",
    "GlueDatabase": "dockerhub_audit", "GlueRawTable": "events_raw", "GlueCompactedTable": "events_compacted",
    "GlueTable": "events", "Table.Arn": "arn:aws:dynamodb:us-east-1:123456789012:table/checkpoints",
}


def resolve(node, env=DEPLOYED):
    """A template value with its intrinsic functions evaluated in `env` (Fn::If: the first
    branch, the default deployment's)."""
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        return [resolve(n, env) for n in node]
    if not (isinstance(node, dict) and len(node) == 1):
        return {k: resolve(v, env) for k, v in node.items()}
    (fn, args), = node.items()
    if fn == "Ref":
        return env[args]
    if fn == "Fn::GetAtt":
        return env[".".join(args) if isinstance(args, list) else args]
    if fn == "Fn::If":
        return resolve(args[1], env)
    if fn == "Fn::Join":
        return args[0].join(resolve(args[1], env))
    if fn == "Fn::Base64":
        return base64.b64encode(resolve(args, env).encode()).decode()
    if fn == "Fn::Sub":
        text, local = (args, {}) if isinstance(args, str) else args
        scope = {**env, **{k: resolve(v, env) for k, v in local.items()}}
        return re.sub(r"\$\{(!?)([\w:.]+)\}",
                      lambda m: "${" + m.group(2) + "}" if m.group(1) else scope[m.group(2)], text)
    return {fn: resolve(args, env)}


def deploy_parameters(overrides=None):
    """A deploy's parameter values: the template's defaults, then `overrides`."""
    values = {k: p.get("Default") for k, p in PARAMETERS.items()}
    values.update(overrides or {})
    return values


def holds(condition, params):
    """Whether a condition of the template holds for these parameter values (as CloudFormation
    compares them: as strings)."""
    def value(node):
        if isinstance(node, dict) and set(node) == {"Ref"}:
            return str(params[node["Ref"]])
        assert not isinstance(node, (dict, list)), f"a condition operand this evaluator does not know: {node}"
        return str(node)

    def ev(node):
        (fn, args), = node.items()
        if fn == "Fn::Equals":
            return value(args[0]) == value(args[1])
        if fn == "Fn::Not":
            return not ev(args[0])
        if fn == "Fn::And":
            return all(ev(a) for a in args)
        if fn == "Fn::Or":
            return any(ev(a) for a in args)
        if fn == "Condition":
            return holds(args, params)
        raise AssertionError(f"a condition function this evaluator does not know: {fn}")
    return ev(TEMPLATE["Conditions"][condition])


def created(resources, params):
    """The resources a deploy creates: those without a Condition or whose Condition holds."""
    return {name: r for name, r in resources.items() if "Condition" not in r or holds(r["Condition"], params)}


def cloudformation_count(resources):
    """How many resources CloudFormation counts against its 500 for these (declared, whether
    their Condition holds or not: the quota applies to the processed template): SAM makes of an
    AWS::Serverless::Function the function, its EventInvokeConfig when it has one, and a role
    when it is given none."""
    count = 0
    for name, r in resources.items():
        count += 1
        if r["Type"] == "AWS::Serverless::Function":
            props = r["Properties"]
            # What SAM would add for these is not counted here: the template has none.
            assert not {"Events", "AutoPublishAlias", "FunctionUrlConfig", "DeploymentPreference"} & set(props), name
            count += ("EventInvokeConfig" in props) + ("Role" not in props)
    return count


def org_list(n):
    return [f"org-{i:08d}" for i in range(n)]


def resolve_env(value, params):
    """A variable of the function's environment for these parameter values (Fn::If evaluated;
    a Ref to a resource as <Logical id>; None for a variable left out, AWS::NoValue)."""
    if isinstance(value, str):
        return value
    (fn, args), = value.items()
    if fn == "Fn::If":
        return resolve_env(args[1] if holds(args[0], params) else args[2], params)
    if fn == "Ref":
        if args == "AWS::NoValue":
            return None
        return str(params[args]) if args in params else f"<{args}>"
    if fn == "Fn::Sub":
        return re.sub(r"\$\{(\w+)\}", lambda m: str(params[m.group(1)]), args)
    raise AssertionError(f"unexpected {fn} in the environment")


class Template(unittest.TestCase):
    def test_cfn_lint_parses_it(self):
        self.assertEqual(MATCHES, [])

    def test_parameters_and_outputs_have_the_names_other_tools_use(self):
        params = set(TEMPLATE["Parameters"])
        for p in ["Organizations", "ScheduleExpression", "SecretPrefix", "BucketName", "KeyPrefix",
                  "Lookback", "RetentionDays", "ObjectLockDays", "KmsKeyArn", "AlarmEmail",
                  "WatermarkAgeAlarmMinutes", "Architecture", "DockerHubUrl", "LogRetentionDays",
                  "Alerts", "AlertBus", "AlertEmail", "AlertRulesS3Uri"]:
            self.assertIn(p, params)
        # The compactor's (docs/aws.md lists them with these defaults).
        compaction = {k: TEMPLATE["Parameters"][k]["Default"] for k in ["LateHorizon", "CompactionLateAfter"]}
        self.assertEqual(compaction, {"LateHorizon": "1d", "CompactionLateAfter": "3d"})
        # The watchdog dispatches the verifications and compactions: no schedule expression each.
        self.assertNotIn("VerifyScheduleExpression", params)
        self.assertNotIn("CompactScheduleExpression", params)
        watch = {k: PARAMETERS[k]["Default"] for k in ["WatchScheduleExpression", "VerifyStartUtc", "VerifySpread",
                                                        "VerifyRange", "OrgAlarms", "SecretMode", "SharedSecretName"]}
        self.assertEqual(watch, {"WatchScheduleExpression": "rate(10 minutes)", "VerifyStartUtc": "04:00",
                                 "VerifySpread": "4h", "VerifyRange": "2d", "OrgAlarms": "none",
                                 "SecretMode": "per-org", "SharedSecretName": "dockerhub-audit-shared"})
        self.assertEqual(PARAMETERS["WatchScheduleExpression"]["AllowedValues"],
                         ["rate(5 minutes)", "rate(10 minutes)", "rate(15 minutes)"])
        self.assertEqual(PARAMETERS["OrgAlarms"]["AllowedValues"], ["none", "watermark", "all"])
        self.assertEqual(PARAMETERS["SecretMode"]["AllowedValues"], ["per-org", "shared"])
        for good in ["04:00", "00:00", "23:59", "19:30"]:
            self.assertTrue(allowed("VerifyStartUtc", good), good)
        for bad in ["24:00", "4:00", "04:60", "0400", "04:00Z", ""]:
            self.assertFalse(allowed("VerifyStartUtc", bad), bad)
        # What the function accepts: 1 minute to 24 hours.
        for good in ["4h", "90m", "24h", "1m", "1440m", "999m"]:
            self.assertTrue(allowed("VerifySpread", good), good)
        for bad in ["4d", "30s", "h", "", "1h30m", "0m", "0h", "25h", "1441m", "2000m"]:
            self.assertFalse(allowed("VerifySpread", bad), bad)
        for name in ["LateHorizon", "CompactionLateAfter"]:
            self.assertEqual(PARAMETERS[name]["AllowedPattern"], PARAMETERS["VerifyRange"]["AllowedPattern"])
            self.assertTrue(allowed(name, "36h"))
            self.assertFalse(allowed(name, "1 day"))
            self.assertFalse(allowed(name, ""))
        for name, default in compaction.items():
            self.assertIn(f"| `{name}` | `{default}` |", AWS_DOC)
        # Alerts are on by default, to a bus the stack creates, with the built-in rules.
        defaults = {k: TEMPLATE["Parameters"][k]["Default"]
                    for k in ["Alerts", "AlertBus", "AlertEmail", "AlertRulesS3Uri"]}
        self.assertEqual(defaults, {"Alerts": "true", "AlertBus": "", "AlertEmail": "", "AlertRulesS3Uri": ""})
        self.assertEqual(TEMPLATE["Parameters"]["Organizations"]["Type"], "CommaDelimitedList")
        # A placeholder, refused at deploy (see the Rules test): `sam build` needs no org list.
        self.assertEqual(TEMPLATE["Parameters"]["Organizations"]["Default"], "SET-ME")
        self.assertEqual(TEMPLATE["Parameters"]["Architecture"]["Default"], "arm64")
        outputs = set(TEMPLATE["Outputs"])
        for o in ["FunctionName", "BucketName", "TableName", "GlueDatabase", "GlueRawTable", "WorkGroup",
                  "DeadLetterQueueUrl", "AlarmTopicArn", "AlertBusName", "AlertTopicArn", "AlertDeadLetterQueueUrl",
                  "CompactorFunctionName", "GlueView"]:
            self.assertIn(o, outputs)
        self.assertEqual(TEMPLATE["Outputs"]["CompactorFunctionName"]["Value"], {"Ref": "Compactor"})
        self.assertEqual(TEMPLATE["Outputs"]["GlueView"]["Value"], {"Ref": "GlueTable"})
        self.assertEqual(TEMPLATE["Outputs"]["GlueRawTable"]["Value"], {"Ref": "GlueRawTable"})
        # No output GlueTable: before compaction it named the JSON table `events`.
        self.assertNotIn("GlueTable", outputs)

    def test_one_schedule_per_org_with_retries_and_a_dead_letter_queue(self):
        loop = RESOURCES["Fn::ForEach::Schedules"]
        self.assertEqual(loop[0], "Org")
        self.assertEqual(loop[1], {"Ref": "Organizations"})
        # Only the collection: the watchdog dispatches the verifications and compactions.
        self.assertEqual(set(loop[2]), {"OrgSchedule&{Org}"})
        schedule = loop[2]["OrgSchedule&{Org}"]["Properties"]
        self.assertEqual(schedule["Name"], {"Fn::Sub": "collect-${Org}"})
        self.assertEqual(schedule["ScheduleExpression"], {"Ref": "ScheduleExpression"})
        target = schedule["Target"]
        self.assertEqual(target["Input"], {"Fn::Sub": '{"org": "${Org}"}'})
        self.assertEqual(target["Arn"], {"Fn::GetAtt": ["Function", "Arn"]})
        self.assertIn("RetryPolicy", target)
        self.assertEqual(target["DeadLetterConfig"]["Arn"], {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]})
        # The scheduler's role may invoke the collector, and nothing else.
        [invoke] = [st for st in RESOURCES["SchedulerRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
                    if st["Action"] == "lambda:InvokeFunction"]
        self.assertEqual(invoke["Resource"], {"Fn::GetAtt": ["Function", "Arn"]})
        on_failure = RESOURCES["Function"]["Properties"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
        self.assertEqual(on_failure["Destination"], {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]})

    def test_one_watchdog_schedule_invokes_the_collector_with_watch(self):
        schedules = dict(resources_of("AWS::Scheduler::Schedule"))
        self.assertEqual(set(schedules), {"OrgSchedule&{Org}", "WatchSchedule"})
        watch = schedules["WatchSchedule"]
        p = watch["Properties"]
        self.assertEqual(p["Name"], "watch")
        self.assertEqual(p["GroupName"], {"Ref": "ScheduleGroup"})
        self.assertEqual(p["ScheduleExpression"], {"Ref": "WatchScheduleExpression"})
        self.assertEqual(p["FlexibleTimeWindow"], {"Mode": "OFF"})
        self.assertEqual(p["State"], "ENABLED")
        target = p["Target"]
        self.assertEqual(json.loads(target["Input"]), {"watch": True})
        self.assertEqual(target["Arn"], {"Fn::GetAtt": ["Function", "Arn"]})
        self.assertEqual(target["RoleArn"], {"Fn::GetAtt": ["SchedulerRole", "Arn"]})
        self.assertEqual(target["RetryPolicy"], {"MaximumRetryAttempts": 1, "MaximumEventAgeInSeconds": 300})
        self.assertEqual(target["DeadLetterConfig"], {"Arn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}})
        # Its first run dispatches: created once the permission to invoke exists.
        self.assertEqual(watch["DependsOn"], "DispatchPolicy")
        # Expanded for a deploy: still one, whatever the orgs.
        resources = expanded({"Organizations": "acme,example"})["Resources"]
        watches = [r for r in resources.values() if r["Type"] == "AWS::Scheduler::Schedule"
                   and json.loads(r["Properties"]["Target"]["Input"]) == {"watch": True}]
        self.assertEqual(len(watches), 1)

    def test_the_function_is_the_lean_lambda_binary_below_the_period(self):
        fn = RESOURCES["Function"]
        self.assertEqual(fn["Metadata"]["BuildMethod"], "rust-cargolambda")
        self.assertEqual(fn["Metadata"]["BuildProperties"]["Binary"], "dockerhub-audit-lambda")
        self.assertEqual(fn["Properties"]["Runtime"], "provided.al2023")
        self.assertLess(fn["Properties"]["Timeout"], 300)
        cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
        build = cargo["package"]["metadata"]["lambda"]["build"]
        self.assertTrue(build["no_default_features"])
        # One feature set builds both functions (SAM's BuildProperties name the binary only):
        # the compactor's, which must not bring the CLI.
        self.assertEqual(build["features"], ["compactor"])
        features = cargo["features"]

        def closure(names):
            out = set()
            while names:
                name = names.pop()
                if name not in out and name in features:
                    out.add(name)
                    names += features[name]
            return out
        enabled = closure(list(build["features"]))
        self.assertTrue({"lambda", "compact"} <= enabled, enabled)
        self.assertNotIn("cli", enabled, "sam build must not bring the CLI features")
        self.assertNotIn("emulator", enabled)
        bins = {b["name"]: b for b in cargo["bin"]}
        self.assertEqual(bins["dockerhub-audit-compactor"]["required-features"], ["compactor"])

    def test_the_compactor_is_its_own_function_with_one_attempt_a_day(self):
        fn, collector = RESOURCES["Compactor"], RESOURCES["Function"]["Properties"]
        self.assertEqual(fn["Type"], "AWS::Serverless::Function")
        self.assertEqual(fn["Metadata"], {"BuildMethod": "rust-cargolambda",
                                          "BuildProperties": {"Binary": "dockerhub-audit-compactor"}})
        p = fn["Properties"]
        self.assertEqual((p["Runtime"], p["Handler"], p["MemorySize"], p["Timeout"]),
                         ("provided.al2023", "bootstrap", 512, 900))
        self.assertEqual(p["Architectures"], collector["Architectures"])
        self.assertEqual(p["Role"], {"Fn::GetAtt": ["CompactorRole", "Arn"]})
        self.assertEqual(p["LoggingConfig"], {"LogFormat": "JSON", "LogGroup": {"Ref": "CompactorLogGroup"}})
        self.assertEqual(RESOURCES["CompactorLogGroup"]["Properties"],
                         RESOURCES["FunctionLogGroup"]["Properties"])
        # The next day's run retries; a failure is alarmed, not queued.
        self.assertEqual(p["EventInvokeConfig"], {"MaximumRetryAttempts": 0})

    def test_the_environment_names_variables_the_lambda_reads(self):
        env = RESOURCES["Function"]["Properties"]["Environment"]["Variables"]
        for required in ["DOCKERHUB_AUDIT_TABLE", "DOCKERHUB_AUDIT_BUCKET", "DOCKERHUB_AUDIT_SECRET_PATTERN",
                         "DOCKERHUB_AUDIT_ALERT_BUS", "DOCKERHUB_AUDIT_ALERT_RULES_S3", "DOCKERHUB_AUDIT_ORGS"]:
            self.assertIn(required, env)
        # The function's allow-list is exactly the orgs the stack schedules.
        self.assertEqual(env["DOCKERHUB_AUDIT_ORGS"], {"Fn::Join": [",", {"Ref": "Organizations"}]})
        self.assertEqual(RESOURCES["Fn::ForEach::Schedules"][1], {"Ref": "Organizations"})
        # A repair takes a compacted day out of the view: the collector knows which view.
        self.assertEqual(env["DOCKERHUB_AUDIT_GLUE_DATABASE"], {"Ref": "GlueDatabase"})
        self.assertEqual(env["DOCKERHUB_AUDIT_VIEW"], {"Ref": "GlueTable"})
        # The watchdog's: when an org is stale, where to say so, what to dispatch and when.
        self.assertEqual(env["DOCKERHUB_AUDIT_STALE_AFTER"], {"Fn::Sub": "${WatermarkAgeAlarmMinutes}m"})
        self.assertEqual(env["DOCKERHUB_AUDIT_ALARM_TOPIC"], {"Ref": "AlarmTopic"})
        self.assertEqual(env["DOCKERHUB_AUDIT_COMPACTOR"], {"Ref": "Compactor"})
        self.assertEqual(env["DOCKERHUB_AUDIT_VERIFY_RANGE"], {"Ref": "VerifyRange"})
        self.assertEqual(env["DOCKERHUB_AUDIT_VERIFY_START"], {"Ref": "VerifyStartUtc"})
        self.assertEqual(env["DOCKERHUB_AUDIT_VERIFY_SPREAD"], {"Ref": "VerifySpread"})
        # A variable whose value would be the function's default is left out (the 4 KB limit).
        for params, metrics, mode, shared in [
                ({}, None, None, None), ({"OrgAlarms": "watermark"}, "watermark", None, None),
                ({"OrgAlarms": "all", "SecretMode": "shared"}, "watermark", "shared", "dockerhub-audit-shared"),
                ({"SecretMode": "shared", "SharedSecretName": "team/hub"}, None, "shared", "team/hub")]:
            values = deploy_parameters(params)
            self.assertEqual(resolve_env(env["DOCKERHUB_AUDIT_ORG_METRICS"], values), metrics, params)
            self.assertEqual(resolve_env(env["DOCKERHUB_AUDIT_SECRET_MODE"], values), mode, params)
            self.assertEqual(resolve_env(env["DOCKERHUB_AUDIT_SHARED_SECRET"], values), shared, params)
        self.assertEqual(resolve_env(env["DOCKERHUB_AUDIT_STALE_AFTER"], deploy_parameters()), "30m")
        # Verifications are dispatched, no longer scheduled: the range reaches the function here.
        self.assertNotIn("VerifyRange", json.dumps(RESOURCES["Fn::ForEach::Schedules"]))

    def test_the_compactors_environment_is_the_collectors_storage_and_the_view(self):
        env = RESOURCES["Compactor"]["Properties"]["Environment"]["Variables"]
        collector = RESOURCES["Function"]["Properties"]["Environment"]["Variables"]
        self.assertEqual(set(env), {
            "DOCKERHUB_AUDIT_ORGS", "DOCKERHUB_AUDIT_TABLE", "DOCKERHUB_AUDIT_BUCKET", "DOCKERHUB_AUDIT_PREFIX",
            "DOCKERHUB_AUDIT_KMS_KEY_ID", "DOCKERHUB_AUDIT_GLUE_DATABASE", "DOCKERHUB_AUDIT_VIEW",
            "DOCKERHUB_AUDIT_LATE_HORIZON", "DOCKERHUB_AUDIT_COMPACTION_LATE"})
        for shared in ["DOCKERHUB_AUDIT_ORGS", "DOCKERHUB_AUDIT_TABLE", "DOCKERHUB_AUDIT_BUCKET",
                       "DOCKERHUB_AUDIT_PREFIX", "DOCKERHUB_AUDIT_KMS_KEY_ID", "DOCKERHUB_AUDIT_GLUE_DATABASE",
                       "DOCKERHUB_AUDIT_VIEW"]:
            self.assertEqual(env[shared], collector[shared], shared)
        self.assertEqual(env["DOCKERHUB_AUDIT_LATE_HORIZON"], {"Ref": "LateHorizon"})
        self.assertEqual(env["DOCKERHUB_AUDIT_COMPACTION_LATE"], {"Ref": "CompactionLateAfter"})
        self.assertEqual(resolve(env["DOCKERHUB_AUDIT_VIEW"]), "events")
        self.assertEqual(RESOURCES["GlueTable"]["Properties"]["TableInput"]["Name"], "events")

    def test_the_code_reads_every_variable_the_template_sets(self):
        # Wherever the code defines them: `pub const ENV_...: &str = "..."`.
        known = set(re.findall(r'pub const ENV_\w+: &str = "(\w+)";', src_text()))
        for function in ["Function", "Compactor"]:
            env = set(RESOURCES[function]["Properties"]["Environment"]["Variables"])
            self.assertTrue(env <= known, f"{function}: the code defines no ENV_ constant for {sorted(env - known)}")

    def test_iam_is_least_privilege_and_the_documented_table_says_the_same(self):
        statements = function_statements()
        for actions, resource, _ in statements:
            self.assertNotEqual(resource, "*", f"{actions} on every resource")
        rows = documented_statements("### IAM permissions")
        self.assertEqual(sorted(rows, key=str), sorted(statements, key=str))

    def test_the_compactors_iam_is_least_privilege_and_documented(self):
        statements = function_statements("CompactorRole")
        for actions, resource, _ in statements:
            self.assertNotIn("*", resource.split(", "), f"{actions} on every resource")
        rows = documented_statements("### The compactor's IAM permissions")
        self.assertEqual(sorted(rows, key=str), sorted(statements, key=str))
        # Exactly these actions: it reads checkpoints, reads and lists the trail, writes its own
        # objects, rewrites the view, logs; KMS through S3 only.
        actions = set().union(*(a for a, _, _ in statements))
        self.assertEqual(actions, {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:UpdateItem", "s3:GetObject", "s3:PutObject", "s3:ListBucket",
                                   "glue:GetTable", "glue:UpdateTable", "logs:CreateLogStream", "logs:PutLogEvents",
                                   "kms:GenerateDataKey", "kms:Decrypt"})
        [kms] = [st for st in role_statements("CompactorRole") if "kms:Decrypt" in actions_of(st)]
        self.assertEqual(kms["Condition"],
                         {"StringEquals": {"kms:ViaService": {"Fn::Sub": "s3.${AWS::Region}.amazonaws.com"}}})
        kms_policy = RESOURCES["CompactorRole"]["Properties"]["Policies"][1]["Fn::If"]
        self.assertEqual((kms_policy[0], kms_policy[2]), ("HasKms", {"Ref": "AWS::NoValue"}))

    def test_the_cli_policy_holds_the_functions_data_actions(self):
        policy = json.loads((ROOT / "infra/iam/cli-backfill-policy.json").read_text())
        cli = set()
        for st in policy["Statement"]:
            cli |= set(st["Action"] if isinstance(st["Action"], list) else [st["Action"]])
            self.assertNotEqual(st["Resource"], "*")
        function = set().union(*(a for a, _, _ in function_statements()))
        # Logs, the dead-letter queue, alerts, the stack's view and the watchdog's actions are the
        # Lambda's alone.
        self.assertEqual(cli, function - {"logs:CreateLogStream", "logs:PutLogEvents", "sqs:SendMessage",
                                          "events:PutEvents", "glue:GetTable", "glue:UpdateTable"} - WATCHDOG_ONLY)

    def test_storage_is_private_encrypted_and_retained(self):
        for name in ["Bucket", "AthenaResultsBucket"]:
            b = RESOURCES[name]
            self.assertEqual(b["DeletionPolicy"], "Retain")
            block = b["Properties"]["PublicAccessBlockConfiguration"]
            self.assertTrue(all(block[k] for k in ["BlockPublicAcls", "BlockPublicPolicy",
                                                   "IgnorePublicAcls", "RestrictPublicBuckets"]))
            self.assertIn("BucketEncryption", b["Properties"])
        self.assertEqual(RESOURCES["Bucket"]["Properties"]["VersioningConfiguration"]["Status"], "Enabled")
        for policy in ["BucketPolicy", "AthenaResultsBucketPolicy"]:
            st = RESOURCES[policy]["Properties"]["PolicyDocument"]["Statement"][0]
            self.assertEqual((st["Effect"], st["Condition"]["Bool"]["aws:SecureTransport"]), ("Deny", "false"))
        lock = RESOURCES["Bucket"]["Properties"]["ObjectLockConfiguration"]["Fn::If"][1]
        self.assertEqual(lock["Rule"]["DefaultRetention"]["Mode"], {"Ref": "ObjectLockMode"})
        table = RESOURCES["Table"]
        self.assertEqual(table["DeletionPolicy"], "Retain")
        self.assertEqual(table["Properties"]["BillingMode"], "PAY_PER_REQUEST")
        self.assertTrue(table["Properties"]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"])
        self.assertTrue(table["Properties"]["SSESpecification"]["SSEEnabled"])

    def test_alarms_watch_metrics_the_function_publishes(self):
        per_org = set(rust_strings("src/lambda/metrics.rs", "PER_ORG"))
        deployment = set(rust_strings("src/lambda/metrics.rs", "DEPLOYMENT"))
        # The compactor's and the watchdog's, without dimension (wherever the code names them).
        compactor = {"CompactionFailed", "DaysAwaitingCompaction"}
        watchdog = {"StaleOrgs"}
        code = src_text()
        for metric in sorted(compactor | watchdog):
            self.assertTrue(f'"{metric}"' in code, f"the code never names the metric {metric}")
        deployment |= compactor | watchdog
        seen = {}
        for name, alarm in resources_of("AWS::CloudWatch::Alarm"):
            p = alarm["Properties"]
            self.assertEqual(p["AlarmActions"], [{"Ref": "AlarmTopic"}], name)
            if p.get("Namespace") != "DockerHubAudit":
                continue
            dims = [d["Name"] for d in p.get("Dimensions", [])]
            allowed = per_org if dims == ["org"] else deployment
            self.assertIn(p["MetricName"], allowed, name)
            seen[name] = p
        age = seen["OrgWatermarkAgeAlarm&{Org}"]
        self.assertEqual(age["TreatMissingData"], "breaching")
        # The watchdog: any stale org in 30 minutes (two runs at the slowest rate), and a
        # watchdog that stops reporting counts as stale.
        stale = seen["StaleOrgsAlarm"]
        self.assertEqual((stale["MetricName"], stale.get("Dimensions"), stale["Statistic"], stale["Period"],
                          stale["EvaluationPeriods"], stale["Threshold"], stale["ComparisonOperator"],
                          stale["TreatMissingData"]),
                         ("StaleOrgs", None, "Maximum", 1800, 1, 0, "GreaterThanThreshold", "breaching"))
        self.assertEqual(stale["OKActions"], [{"Ref": "AlarmTopic"}])
        self.assertNotIn("Condition", RESOURCES["StaleOrgsAlarm"])
        description = stale["AlarmDescription"]["Fn::Sub"]
        for words in ["${WatermarkAgeAlarmMinutes}", "never ran", "schedule is gone or disabled", "runs fail",
                      "lease is stuck", "watchdog stopped reporting", "names each org"]:
            self.assertIn(words, description)
        self.assertIn("OrgRunsFailedAlarm&{Org}", seen)
        self.assertIn("OrgThrottlingAlarm&{Org}", seen)
        self.assertEqual(seen["MissingEventsAlarm"]["MetricName"], "EventsMissing")
        failed = seen["AlertsFailedAlarm"]
        self.assertEqual((failed["MetricName"], failed.get("Dimensions"), failed["Statistic"], failed["Period"]),
                         ("AlertsFailed", None, "Sum", 900))
        self.assertEqual((failed["Threshold"], failed["ComparisonOperator"], failed["TreatMissingData"]),
                         (1, "GreaterThanOrEqualToThreshold", "notBreaching"))
        # The compactor: any closed day left uncompacted too long, whatever the cause (a failure,
        # a crash, a timeout), in the last day (it runs daily).
        late = seen["CompactionLateAlarm"]
        self.assertEqual((late["MetricName"], late.get("Dimensions"), late["Statistic"], late["Period"],
                          late["Threshold"], late["ComparisonOperator"]),
                         ("DaysAwaitingCompaction", None, "Maximum", 86400, 0, "GreaterThanThreshold"))
        # No alarm on Lambda's Errors: a collector that crashes, times out or keeps failing
        # leaves its org stale (StaleOrgsAlarm names it), what fails past the retries lands in
        # the dead-letter queue (DeadLetterAlarm), and a compactor's crash leaves days late.
        self.assertEqual([name for name, a in resources_of("AWS::CloudWatch::Alarm")
                          if a["Properties"].get("Namespace") == "AWS/Lambda"], [])
        for name in ["FunctionErrorsAlarm", "CompactorErrorsAlarm", "CompactionFailedAlarm"]:
            self.assertNotIn(name, RESOURCES)
            self.assertNotIn(f"`{name}`", alarms_section())
        late_description = RESOURCES["CompactionLateAlarm"]["Properties"]["AlarmDescription"]
        self.assertIn("crashed or timed out", late_description)
        for name in ["CompactionLateAlarm", "StaleOrgsAlarm"]:
            # Emulators refuse metric math: every alarm is a plain one.
            self.assertNotIn("Metrics", RESOURCES[name]["Properties"], name)
            self.assertIn(f"`{name}`", AWS_DOC)

    def test_every_alarm_is_in_the_documented_table_and_no_other(self):
        section = alarms_section()
        documented = set(re.findall(r"^\| `(\w+(?:<org>)?)` \|", section, re.M))
        alarms = {name.replace("&{Org}", "<org>") for name, _ in resources_of("AWS::CloudWatch::Alarm")}
        # RunsFailedAlarm and ThrottlingAlarm: the per-org ones' rows, named below the table.
        self.assertEqual(documented, alarms - {"RunsFailedAlarm", "ThrottlingAlarm"})
        for name in ["RunsFailedAlarm", "ThrottlingAlarm"]:
            self.assertIn(f"`{name}`", section)
        rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+(?:<org>)?)` \|(.*)$", section, re.M)}
        for name in ["OrgWatermarkAgeAlarm<org>", "OrgRunsFailedAlarm<org>", "OrgThrottlingAlarm<org>"]:
            self.assertIn("`OrgAlarms=", rows[name], name)
        self.assertIn("dockerhub-audit status --all --checkpoint dynamodb://<TableName>", rows["StaleOrgsAlarm"])

    def test_alerts_go_from_the_bus_to_their_own_topic(self):
        bus = {"Fn::If": ["NoAlertBusName", {"Ref": "AlertEventBus"}, {"Ref": "AlertBus"}]}
        alerts = [name for name, r in RESOURCES.items() if name.startswith("Alert")]
        for name in alerts:
            self.assertIn(RESOURCES[name].get("Condition"), ["AlertsOn", "CreateAlertBus", "HasAlertEmail"], name)
        self.assertEqual(RESOURCES["AlertEventBus"]["Type"], "AWS::Events::EventBus")
        self.assertEqual(RESOURCES["AlertEventBus"]["Condition"], "CreateAlertBus")
        # The rule on the bus the function sends to, routing the function's events to the alert
        # topic (not the alarm topic).
        rules = list(resources_of("AWS::Events::Rule"))
        self.assertEqual([name for name, _ in rules], ["AlertRule"])
        rule = rules[0][1]["Properties"]
        # `account` is set by EventBridge, not by the sender: another account's events on a
        # shared bus cannot pass for this stack's.
        self.assertEqual(rule["EventPattern"], {"source": ["dockerhub-audit"], "account": [{"Ref": "AWS::AccountId"}]})
        self.assertEqual(rule["EventBusName"], bus)
        self.assertEqual([t["Arn"] for t in rule["Targets"]], [{"Ref": "AlertTopic"}])
        self.assertEqual(RESOURCES["AlertTopic"]["Type"], "AWS::SNS::Topic")
        env = RESOURCES["Function"]["Properties"]["Environment"]["Variables"]
        self.assertEqual(env["DOCKERHUB_AUDIT_ALERT_BUS"], {"Fn::If": ["AlertsOn", bus, {"Ref": "AWS::NoValue"}]})
        # EventBridge may publish to the topic, for this rule only.
        policies = [r["Properties"] for _, r in resources_of("AWS::SNS::TopicPolicy")
                    if {"Ref": "AlertTopic"} in r["Properties"]["Topics"]]
        self.assertEqual(len(policies), 1)
        [st] = policies[0]["PolicyDocument"]["Statement"]
        self.assertEqual((st["Effect"], st["Principal"], st["Action"], st["Resource"]),
                         ("Allow", {"Service": "events.amazonaws.com"}, "sns:Publish", {"Ref": "AlertTopic"}))
        self.assertEqual(st["Condition"], {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["AlertRule", "Arn"]}}})
        subscription = RESOURCES["AlertEmailSubscription"]
        self.assertEqual(subscription["Properties"]["TopicArn"], {"Ref": "AlertTopic"})
        self.assertEqual(subscription["Condition"], "HasAlertEmail")
        # The function may put events on that bus only, and only when alerts are on. The created
        # bus is named, not referenced (its policy names the role: a Ref would be a cycle), with
        # the name the bus gets.
        statements = RESOURCES["FunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        [put] = [st for st in statements if "Fn::If" in st and st["Fn::If"][1]["Action"] == "events:PutEvents"]
        self.assertEqual(put["Fn::If"][0], "AlertsOn")
        self.assertEqual(put["Fn::If"][2], {"Ref": "AWS::NoValue"})
        resource = put["Fn::If"][1]["Resource"]
        self.assertNotEqual(resource, "*")
        created_name = RESOURCES["AlertEventBus"]["Properties"]["Name"]
        self.assertEqual(resource, {"Fn::Sub": [
            "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${Bus}",
            {"Bus": {"Fn::If": ["NoAlertBusName", created_name, {"Ref": "AlertBus"}]}}]})

    def test_glue_tables_and_ddl_agree(self):
        statements = ddl_statements()
        tables = [s for s in statements if s.startswith("CREATE EXTERNAL TABLE")]
        self.assertEqual(len(tables), 2)
        parsed = {}
        for text in tables:
            table = parse_ddl_table(text)
            parsed[table["Name"]] = table
        # The raw table first (tests/deploy.rs reads the first table's columns).
        self.assertEqual(list(parsed), ["events_raw", "events_compacted"])
        deployed = {}
        for logical in ["GlueRawTable", "GlueCompactedTable"]:
            res = RESOURCES[logical]
            self.assertEqual(res["Type"], "AWS::Glue::Table")
            self.assertEqual(res["Properties"]["DatabaseName"], {"Ref": "GlueDatabase"})
            table = resolve(res["Properties"]["TableInput"])
            deployed[table["Name"]] = table
            self.assertEqual(table["TableType"], "EXTERNAL_TABLE")
        self.assertEqual(set(deployed), set(parsed))
        for name, ddl in parsed.items():
            table = deployed[name]
            sd = table["StorageDescriptor"]
            self.assertEqual([(c["Name"], c["Type"]) for c in sd["Columns"]], ddl["Columns"], name)
            self.assertEqual([(k["Name"], k["Type"]) for k in table["PartitionKeys"]], ddl["PartitionKeys"], name)
            self.assertEqual((sd["SerdeInfo"]["SerializationLibrary"], sd["InputFormat"], sd["OutputFormat"]),
                             (ddl["Serde"], ddl["InputFormat"], ddl["OutputFormat"]), name)
            self.assertEqual(sd["Location"], ddl["Location"], name)
            # Projection included: the same properties with the same values.
            self.assertEqual(table["Parameters"], ddl["Parameters"], name)
        raw, compacted = parsed["events_raw"], parsed["events_compacted"]
        self.assertEqual(raw["Serde"], "org.apache.hive.hcatalog.data.JsonSerDe")
        self.assertEqual((compacted["Serde"], compacted["InputFormat"], compacted["OutputFormat"]), PARQUET)
        self.assertEqual(raw["Parameters"]["classification"], "json")
        self.assertEqual(compacted["Parameters"]["classification"], "parquet")
        self.assertEqual(raw["Parameters"]["storage.location.template"], "s3://BUCKET/PREFIX/org=${org}/dt=${dt}/")
        self.assertEqual(compacted["Parameters"]["storage.location.template"],
                         "s3://BUCKET/PREFIX/compacted/org=${org}/dt=${dt}/")
        self.assertEqual(compacted["Location"], "s3://BUCKET/PREFIX/compacted/")
        projection = {k: v for k, v in raw["Parameters"].items() if k.startswith("projection.")}
        self.assertEqual(projection, {k: v for k, v in compacted["Parameters"].items() if k.startswith("projection.")})
        self.assertEqual(projection["projection.org.values"], "acme,example")
        # The same columns; only the timestamp's type differs (a string in the raw trail).
        self.assertEqual(raw["PartitionKeys"], [("org", "string"), ("dt", "string")])
        self.assertEqual(compacted["PartitionKeys"], raw["PartitionKeys"])
        self.assertEqual([c for c in compacted["Columns"] if c[0] != "timestamp"],
                         [c for c in raw["Columns"] if c[0] != "timestamp"])
        self.assertEqual(dict(raw["Columns"])["timestamp"], "string")
        self.assertEqual(dict(compacted["Columns"])["timestamp"], "timestamp")
        self.assertEqual([c for c, _ in raw["Columns"]], VIEW_COLUMNS[:-2])

    def test_duckdb_view_has_the_raw_tables_columns(self):
        ddl_columns = parse_ddl_table(ddl_statements()[0])["Columns"]
        duck = (ROOT / "infra/duckdb/events.sql").read_text()
        duck_columns = re.findall(r"'(\w+)': '([^']+)'", duck.split("columns = {", 1)[1].split("}", 1)[0])
        self.assertEqual([c for c, _ in duck_columns], [c for c, _ in ddl_columns])
        hive_to_duck = {"string": "VARCHAR", "map<string,string>": "MAP(VARCHAR, VARCHAR)"}
        for (name, hive), (_, duck_type) in zip(ddl_columns, duck_columns):
            if hive.startswith("struct<"):
                fields = re.findall(r"(\w+):string", hive)
                self.assertEqual(duck_type, "STRUCT(" + ", ".join(f"{f} VARCHAR" for f in fields) + ")", name)
            else:
                self.assertEqual(duck_type, hive_to_duck[hive], name)

    def test_the_view_is_athenas_presto_view_of_both_tables_with_nothing_compacted(self):
        view = RESOURCES["GlueTable"]["Properties"]
        self.assertEqual(view["DatabaseName"], {"Ref": "GlueDatabase"})
        table = resolve(view["TableInput"])
        self.assertEqual(table["Name"], "events")
        self.assertEqual(table["TableType"], "VIRTUAL_VIEW")
        self.assertEqual(table["Parameters"],
                         {"presto_view": "true", "comment": "Presto View", "dockerhub_audit.compacted": "{}"})
        self.assertEqual(table["ViewExpandedText"], "/* Presto View */")
        self.assertEqual(table["PartitionKeys"], [])
        m = re.fullmatch(r"/\* Presto View: ([A-Za-z0-9+/=]+) \*/", table["ViewOriginalText"])
        self.assertIsNotNone(m, table["ViewOriginalText"][:80])
        presto = json.loads(base64.b64decode(m.group(1), validate=True))
        self.assertEqual(set(presto), {"originalSql", "catalog", "schema", "columns"})
        self.assertEqual((presto["catalog"], presto["schema"]), ("awsdatacatalog", DEPLOYED["GlueDatabase"]))
        # The initial predicate: nothing compacted. The DDL's view is the same text.
        self.assertEqual(presto["originalSql"], VIEW_SQL.format(C="false"))
        [ddl_view] = [s for s in ddl_statements() if s.startswith("CREATE OR REPLACE VIEW")]
        self.assertEqual(ddl_view, "CREATE OR REPLACE VIEW events AS\n" + VIEW_SQL.format(C="false"))
        # Its 12 columns: the raw table's, then the partitions, all strings; the Presto types
        # are the Hive types of the Glue columns.
        hive = [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]
        raw = resolve(RESOURCES["GlueRawTable"]["Properties"]["TableInput"])
        self.assertEqual(hive, [(c["Name"], c["Type"]) for c in raw["StorageDescriptor"]["Columns"]]
                         + [(k["Name"], k["Type"]) for k in raw["PartitionKeys"]])
        self.assertEqual([c["name"] for c in presto["columns"]], VIEW_COLUMNS)
        self.assertEqual([(c["name"], c["type"]) for c in presto["columns"]],
                         [(name, presto_type(ty)) for name, ty in hive])
        self.assertEqual(dict((c["name"], c["type"]) for c in presto["columns"])["collector"],
                         "row(ingested_at varchar,window_from varchar,window_to varchar,run_id varchar)")
        # Each branch selects the view's columns, in order, from its table; one is the other's
        # complement.
        branches = presto["originalSql"].split(" UNION ALL ")
        self.assertEqual(len(branches), 2)
        sources = []
        for branch in branches:
            bm = re.fullmatch(r"SELECT (.*) FROM (\w+) WHERE (.*)", branch)
            self.assertIsNotNone(bm, branch)
            self.assertEqual(select_names(bm.group(1)), VIEW_COLUMNS, branch)
            sources.append((bm.group(2), bm.group(3)))
        self.assertEqual(sources, [("events_raw", "NOT (false)"), ("events_compacted", "false")])

    def test_an_update_from_before_compaction_turns_the_table_events_into_the_view_in_place(self):
        # Before compaction the resource GlueTable was the JSON table `events`. The view keeps
        # that logical id, name, database and catalog (the properties whose change would replace
        # it), so CloudFormation updates the table into the view with one UpdateTable instead of
        # creating a second `events`; the raw table is a new resource with a new name.
        names = {logical: r["Properties"]["TableInput"]["Name"] for logical, r in resources_of("AWS::Glue::Table")}
        self.assertEqual(names, {"GlueTable": "events", "GlueRawTable": "events_raw",
                                 "GlueCompactedTable": "events_compacted"})
        view = RESOURCES["GlueTable"]
        self.assertEqual(view["Properties"]["TableInput"]["TableType"], "VIRTUAL_VIEW")
        self.assertEqual(view["Properties"]["DatabaseName"], {"Ref": "GlueDatabase"})
        self.assertEqual(view["Properties"]["CatalogId"], {"Ref": "AWS::AccountId"})
        self.assertEqual(view["DependsOn"], ["GlueRawTable", "GlueCompactedTable"])

    def test_named_queries_are_the_sql_files_verbatim(self):
        check = subprocess.run([sys.executable, str(ROOT / "infra/named-queries.py"), "--check"])
        self.assertEqual(check.returncode, 0)
        queries = {p.stem: p.read_text() for p in (ROOT / "infra/queries").glob("*.sql")}
        deployed = {r["Properties"]["Name"]: r["Properties"]["QueryString"]
                    for _, r in resources_of("AWS::Athena::NamedQuery")}
        self.assertEqual(deployed, queries)
        self.assertGreaterEqual(len(queries), 9)

    def test_samconfig_turns_language_extensions_on_for_every_command(self):
        cfg = tomllib.loads((ROOT / "samconfig.toml").read_text())["default"]
        for command in ["build", "deploy", "package", "validate", "sync"]:
            self.assertTrue(cfg[command]["parameters"]["language_extensions"], command)
        self.assertIn("CAPABILITY_AUTO_EXPAND", cfg["deploy"]["parameters"]["capabilities"])


class Scale(unittest.TestCase):
    """A stack of a few hundred orgs within CloudFormation's 500 resources (issue 21).
    scripts/scale.py measures the other limits (the Organizations value, the function's
    environment) and runs cfn-lint at the limit."""

    def counts(self, n, overrides=None):
        """(declared, created, their logical ids) for n orgs with these parameters."""
        overrides = {"Organizations": ",".join(org_list(n)), **(overrides or {})}
        declared = expanded(overrides)["Resources"]
        made = created(declared, deploy_parameters(overrides))
        return cloudformation_count(declared), cloudformation_count(made), set(declared), set(made)

    def test_by_default_each_org_is_one_resource_its_collect_schedule(self):
        small, large = self.counts(3), self.counts(7)
        # Declared (what the 500 counts) and created (Conditions evaluated): 4 orgs more, 4 more.
        self.assertEqual(large[0] - small[0], 4)
        self.assertEqual(large[1] - small[1], 4)
        self.assertEqual(large[2] - small[2], {f"OrgSchedule{o.replace('-', '')}" for o in org_list(7)[3:]})
        self.assertEqual(large[3] - small[3], large[2] - small[2])
        # No per-org alarm, declared or not, with OrgAlarms=none (the default).
        self.assertEqual(PARAMETERS["OrgAlarms"]["Default"], "none")
        self.assertFalse([name for name in large[2] if name.startswith("Org") and "Alarm" in name])

    def test_240_orgs_fit_in_one_stack_with_the_defaults(self):
        one, two = self.counts(1)[0], self.counts(2)[0]
        per_org = two - one
        fixed = one - per_org
        self.assertEqual(per_org, 1)
        # The resources of the deployment (SAM's functions counted as what SAM makes of them),
        # the same whatever the orgs; docs and scripts/scale.py quote it.
        self.assertLessEqual(fixed + 240 * per_org, 500)
        self.assertEqual(self.counts(240)[0], fixed + 240)
        self.assertEqual(fixed, 50)
        # Per-org alarms cost resources: OrgAlarms=watermark two per org, all four.
        for org_alarms, resources in [("watermark", 2), ("all", 4)]:
            a, b = self.counts(2, {"OrgAlarms": org_alarms})[0], self.counts(3, {"OrgAlarms": org_alarms})[0]
            self.assertEqual(b - a, resources, org_alarms)
        # The functions are given a role and no events: SAM adds each one resource only.
        for name in ["Function", "Compactor"]:
            props = RESOURCES[name]["Properties"]
            self.assertIn("Role", props)
            self.assertIn("EventInvokeConfig", props)
            self.assertNotIn("Events", props)

    def test_per_org_alarms_are_declared_only_when_asked_for(self):
        # Their loops iterate over the orgs only when OrgAlarms asks for them (a resource whose
        # Condition is false would still count against the 500): over an empty list of the
        # mapping OrgAlarmsLeftOut, or the orgs (FindInMap's DefaultValue). Not an Fn::If: the
        # transform does not resolve one in a collection (ministack refuses it).
        loops = {"Fn::ForEach::WatermarkAlarmPerOrg": ("Watermark", {"watermark", "all"},
                                                       {"OrgWatermarkAgeAlarm&{Org}"}),
                 "Fn::ForEach::FailureAlarmsPerOrg": ("Failures", {"all"},
                                                      {"OrgRunsFailedAlarm&{Org}", "OrgThrottlingAlarm&{Org}"})}
        left_out = TEMPLATE["Mappings"]["OrgAlarmsLeftOut"]
        for loop, (key, wanted, alarms) in loops.items():
            identifier, collection, fragments = RESOURCES[loop]
            self.assertEqual(collection, {"Fn::FindInMap": ["OrgAlarmsLeftOut", {"Ref": "OrgAlarms"}, key,
                                                            {"DefaultValue": {"Ref": "Organizations"}}]}, loop)
            self.assertEqual(set(fragments), alarms)
            # Left out exactly unless OrgAlarms asks for them.
            for value in PARAMETERS["OrgAlarms"]["AllowedValues"]:
                omitted = left_out.get(value, {}).get(key)
                self.assertIn(omitted, [None, []], (value, key))
                self.assertEqual(omitted is None, value in wanted, (value, key))
        # none: the watchdog alone; watermark: the age per org (and the function publishes it),
        # failures and throttling for all orgs at once; all: everything per org.
        truth = {"none": (False, False), "watermark": (True, True), "all": (True, False)}
        for value, expected in truth.items():
            params = deploy_parameters({"OrgAlarms": value})
            self.assertEqual(tuple(holds(c, params) for c in ["OrgWatermarkAlarms", "SharedFailureAlarms"]),
                             expected, value)
        self.assertEqual(RESOURCES["RunsFailedAlarm"]["Condition"], "SharedFailureAlarms")
        self.assertEqual(RESOURCES["ThrottlingAlarm"]["Condition"], "SharedFailureAlarms")

    def test_without_org_alarms_no_org_alarm_and_no_per_org_metric(self):
        overrides = {"Organizations": "acme,example", "OrgAlarms": "none"}
        params = deploy_parameters(overrides)
        declared = expanded(overrides)["Resources"]
        for resources in [declared, created(declared, params)]:
            alarms = {name: r for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
            self.assertFalse([n for n, r in alarms.items() if r["Properties"].get("Dimensions", [{}])[0].get("Name")
                              == "org"])
        made = created(declared, params)
        self.assertIn("StaleOrgsAlarm", made)
        self.assertNotIn("RunsFailedAlarm", made)
        self.assertNotIn("ThrottlingAlarm", made)
        env = RESOURCES["Function"]["Properties"]["Environment"]["Variables"]
        self.assertIsNone(resolve_env(env["DOCKERHUB_AUDIT_ORG_METRICS"], params))
        self.assertIsNone(resolve_env(env["DOCKERHUB_AUDIT_ORG_METRICS"], deploy_parameters()))


# The view of the spec: a day comes from exactly one side. C lists the compacted (org, day)
# pairs; `false` when nothing is compacted (the template's and the DDL's).
VIEW_SQL = ('SELECT account, action, action_description, actor, category, collector, data, event_id, name, '
            '"timestamp", org, dt FROM events_raw WHERE NOT ({C}) UNION ALL SELECT account, action, '
            'action_description, actor, category, collector, data, event_id, name, '
            'to_iso8601(with_timezone("timestamp", \'UTC\')) AS "timestamp", org, dt FROM events_compacted WHERE {C}')
VIEW_COLUMNS = ["account", "action", "action_description", "actor", "category", "collector", "data", "event_id",
                "name", "timestamp", "org", "dt"]
# What Athena's STORED AS PARQUET stands for.
PARQUET = ("org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
           "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
           "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat")


def ddl_statements():
    """The statements of infra/athena/events-table.sql, comments dropped, without the `;`."""
    text = "\n".join(l for l in (ROOT / "infra/athena/events-table.sql").read_text().splitlines()
                     if not l.startswith("--"))
    return [s.strip().removesuffix(";") for s in text.split(";\n") if s.strip()]


def parse_ddl_table(text):
    """A CREATE EXTERNAL TABLE statement as the Glue TableInput fields it sets."""
    m = re.fullmatch(r"CREATE EXTERNAL TABLE IF NOT EXISTS (\w+) \((.*?)\)\nPARTITIONED BY \((.*?)\)\n(.*)"
                     r"LOCATION '([^']+)'\nTBLPROPERTIES \((.*)\)", text, re.S)
    assert m, text[:80]
    name, columns, partitions, storage, location, properties = m.groups()
    if storage.strip() == "STORED AS PARQUET":
        serde = PARQUET
    else:
        serde = re.fullmatch(r"ROW FORMAT SERDE '([^']+)'\nSTORED AS INPUTFORMAT '([^']+)'\nOUTPUTFORMAT '([^']+)'\n",
                             storage).groups()
    return {
        "Name": name,
        "Columns": re.findall(r"`(\w+)` ([^\n]+?),?\n", columns),
        "PartitionKeys": re.findall(r"`(\w+)` ([^\n]+?),?\n", partitions),
        "Serde": serde[0], "InputFormat": serde[1], "OutputFormat": serde[2],
        "Location": location,
        "Parameters": dict(re.findall(r"'([\w.]+)' = '([^']*)'", properties)),
    }


def presto_type(hive):
    """The Presto type Athena gives a Hive column type (the ones these tables use)."""
    if hive == "string":
        return "varchar"
    if hive == "map<string,string>":
        return "map(varchar,varchar)"
    m = re.fullmatch(r"struct<(.*)>", hive)
    assert m, hive
    return "row(" + ",".join(f"{f} {presto_type(ty)}" for f, ty in
                             (field.split(":", 1) for field in m.group(1).split(","))) + ")"


def select_names(select):
    """The output names of a select list (split at top-level commas)."""
    items, depth, current = [], 0, ""
    for c in select:
        depth += (c == "(") - (c == ")")
        if c == "," and depth == 0:
            items.append(current.strip())
            current = ""
        else:
            current += c
    items.append(current.strip())
    return [re.split(r" AS ", item)[-1].strip('"') for item in items]


def rules_accept(organizations):
    """Evaluates the template's Rules for a value of Organizations the way CloudFormation does
    before it creates anything: the AssertDescription of each assertion that fails."""
    members = organizations.split(",") if organizations else []

    def ev(node):
        if isinstance(node, str):
            return node
        (fn, args), = node.items()
        if fn == "Ref":
            assert args == "Organizations", args
            return members
        if fn == "Fn::Not":
            return not ev(args[0])
        if fn == "Fn::EachMemberEquals":
            return all(m == ev(args[1]) for m in ev(args[0]))
        if fn == "Fn::Contains":
            return ev(args[1]) in ev(args[0])
        raise AssertionError(f"a rule function this evaluator does not know: {fn}")

    return [a["AssertDescription"] for rule in TEMPLATE["Rules"].values()
            for a in rule["Assertions"] if not ev(a["Assert"])]


class Trust(unittest.TestCase):
    """What the template does to keep the token, the trail and the orgs safe (issue 18)."""

    def test_the_role_can_read_only_a_folder_of_secrets(self):
        # The role may read <SecretPrefix>*: an empty prefix would be every secret in the
        # account, and a prefix that is not a folder (`dockerhub`) would take in other tools'.
        for good in ["dockerhub-audit/", "team/dockerhub-audit/", "/"]:
            self.assertTrue(allowed("SecretPrefix", good), good)
        for bad in ["", "dockerhub-audit", "dockerhub-audit/*", "*", "a/b"]:
            self.assertFalse(allowed("SecretPrefix", bad), bad)
        self.assertTrue(allowed("SecretPrefix", PARAMETERS["SecretPrefix"]["Default"]))
        [read] = [st for st in role_statements() if st["Action"] == "secretsmanager:GetSecretValue"]
        condition, per_org, _ = read["Resource"]["Fn::If"]
        self.assertEqual(condition, "SecretPerOrg")
        self.assertTrue(per_org["Fn::Sub"].endswith(":secret:${SecretPrefix}*"))

    def test_a_shared_secret_is_the_only_secret_the_role_can_read(self):
        [read] = [st for st in role_statements() if st["Action"] == "secretsmanager:GetSecretValue"]
        self.assertEqual(read["Sid"], "ReadDockerHubSecrets")
        condition, per_org, shared = read["Resource"]["Fn::If"]
        self.assertEqual(TEMPLATE["Conditions"][condition], {"Fn::Equals": [{"Ref": "SecretMode"}, "per-org"]})
        self.assertTrue(holds(condition, deploy_parameters()))
        self.assertFalse(holds(condition, deploy_parameters({"SecretMode": "shared"})))
        arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:"
        env = {**DEPLOYED, "SecretPrefix": "dockerhub-audit/", "SharedSecretName": "dockerhub-audit-shared"}
        per_org, shared = resolve(per_org, env), resolve(shared, env)
        self.assertEqual(per_org, arn + "dockerhub-audit/*")
        self.assertEqual(shared, arn + "dockerhub-audit-shared-??????")
        # Shared: exactly that secret (Secrets Manager appends '-' and 6 random characters), not
        # the prefix's, not one whose name merely starts the same.
        self.assertTrue(iam_like(shared, arn + "dockerhub-audit-shared-AbC123"))
        for other in [arn + "dockerhub-audit/acme-AbC123", arn + "dockerhub-audit-shared2-AbC123",
                      arn + "dockerhub-audit-shared-AbC123-xyzXYZ", arn + "dockerhub-audit-sharedx-AbC12",
                      arn + "other-AbC123"]:
            self.assertFalse(iam_like(shared, other), other)
        # Per org: every secret below the prefix, and not the shared one.
        self.assertTrue(iam_like(per_org, arn + "dockerhub-audit/acme-AbC123"))
        self.assertFalse(iam_like(per_org, arn + "dockerhub-audit-shared-AbC123"))
        # The name becomes part of the ARN: no wildcards, no ARN.
        for good in ["dockerhub-audit-shared", "team/hub", "a", "x_y+z=w.v@u"]:
            self.assertTrue(allowed("SharedSecretName", good), good)
        for bad in ["", "a*", "a?b", "*", "arn:aws:secretsmanager:us-east-1:123456789012:secret:x", "a b"]:
            self.assertFalse(allowed("SharedSecretName", bad), bad)
        self.assertTrue(allowed("SharedSecretName", PARAMETERS["SharedSecretName"]["Default"]))
        # docs/aws.md says what shared mode grants instead.
        self.assertIn("arn:aws:secretsmanager:<region>:<account>:secret:<SharedSecretName>-??????",
                      AWS_DOC.split("### IAM permissions\n", 1)[1].split("\n#", 1)[0])

    def test_the_watchdog_may_scan_notify_and_dispatch_and_nothing_more(self):
        statements = {st["Sid"]: st for st in role_statements()}
        self.assertIn("dynamodb:Scan", actions_of(statements["CheckpointsAndLeases"]))
        notify = statements["NotifyAlarmTopic"]
        self.assertEqual((notify["Effect"], notify["Action"], notify["Resource"]),
                         ("Allow", "sns:Publish", {"Ref": "AlarmTopic"}))
        # Dispatch: its own policy on the role (the role's inline policy cannot name the
        # function that uses the role), invoking exactly the two functions.
        [(name, policy)] = attached_policies("FunctionRole")
        self.assertEqual(name, "DispatchPolicy")
        p = policy["Properties"]
        self.assertEqual((p["PolicyName"], p["Roles"]), ("dispatch", [{"Ref": "FunctionRole"}]))
        [st] = p["PolicyDocument"]["Statement"]
        self.assertEqual((st["Effect"], st["Action"]), ("Allow", "lambda:InvokeFunction"))
        self.assertEqual(st["Resource"], [{"Fn::GetAtt": ["Function", "Arn"]}, {"Fn::GetAtt": ["Compactor", "Arn"]}])
        self.assertNotIn("Condition", st)
        # Nowhere else does the collector's role get these.
        inline = [s["Fn::If"][1] if "Fn::If" in s else s for pol in RESOURCES["FunctionRole"]["Properties"]["Policies"]
                  for s in (pol["Fn::If"][1] if "Fn::If" in pol else pol)["PolicyDocument"]["Statement"]]
        for s in inline:
            self.assertNotIn("lambda:InvokeFunction", actions_of(s))
        self.assertEqual([s["Sid"] for s in inline if "sns:Publish" in actions_of(s)], ["NotifyAlarmTopic"])

    def test_organizations_are_checked_like_the_functions_org_names(self):
        # Each member: the function's Org rules, plus a length that keeps the schedule names
        # within EventBridge Scheduler's 64 characters; a longer (valid) org is refused at deploy.
        names = ["acme", "acme-corp_2", "0", "_x", "a" * 56, "a-" * 28,
                 "", "-acme", "Acme", "ac me", "a.b", "a/b", "a*", "é", "a" * 57, "a" * 255]
        for name in names:
            self.assertEqual(allowed("Organizations", name), is_org(name) and len(name) <= 56, name)
        self.assertTrue(allowed("Organizations", "acme,example,acme-corp"))
        self.assertFalse(allowed("Organizations", "acme,Example"))
        schedules = RESOURCES["Fn::ForEach::Schedules"][2]
        longest = "a" * 56
        for schedule in schedules.values():
            name = schedule["Properties"]["Name"]["Fn::Sub"].replace("${Org}", longest)
            self.assertLessEqual(len(name), 64, name)
            self.assertRegex(name, r"^[0-9a-zA-Z_.-]+$")
        # The placeholder passes the pattern (for `sam build`) but is never an org.
        self.assertFalse(is_org(PARAMETERS["Organizations"]["Default"]))

    def test_a_deploy_without_organizations_is_refused_before_anything_is_created(self):
        self.assertEqual(rules_accept("acme,example"), [])
        for value in [PARAMETERS["Organizations"]["Default"], "", "acme,SET-ME"]:
            refused = rules_accept(value)
            self.assertTrue(refused, value)
            self.assertTrue(all("Organizations" in why for why in refused), refused)
        self.assertIn("set it to the Docker Hub organizations", " ".join(rules_accept("SET-ME")))

    def test_sam_build_needs_no_org_list(self):
        # `sam build --parameter-overrides Architecture=x86_64` (the override replaces
        # samconfig's) expands Fn::ForEach locally: it used to fail with "Fn::ForEach::Schedules
        # layout is incorrect". So does samconfig's build section.
        expanded({"Architecture": "x86_64"})
        config = tomllib.loads((ROOT / "samconfig.toml").read_text())["default"]["build"]["parameters"]
        self.assertNotIn("Organizations", overrides_of(config["parameter_overrides"]))
        expanded(overrides_of(config["parameter_overrides"]))

    def test_each_org_gets_its_own_schedule_with_its_own_input(self):
        orgs = ["acme-corp", "example", "a_b", "x" * 56]
        for org_alarms, per_org_alarms in [("none", 0), ("watermark", 1), ("all", 3)]:
            params = deploy_parameters({"Organizations": ",".join(orgs), "OrgAlarms": org_alarms})
            declared = expanded({"Organizations": ",".join(orgs), "OrgAlarms": org_alarms})["Resources"]
            for resources in [declared, created(declared, params)]:
                schedules = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Scheduler::Schedule"]
                # One per org, and the watchdog's.
                self.assertEqual(len(schedules), len(orgs) + 1)
                for org in orgs:
                    [mine] = [s for s in schedules if json.loads(s["Target"]["Input"]).get("org") == org]
                    self.assertEqual(mine["Name"], f"collect-{org}")
                    self.assertEqual(mine["Target"]["Arn"], {"Fn::GetAtt": ["Function", "Arn"]})
                    alarms = [r for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"
                              and r["Properties"].get("Dimensions") == [{"Name": "org", "Value": org}]]
                    self.assertEqual(len(alarms), per_org_alarms, (org, org_alarms))

    def test_orgs_that_would_share_logical_ids_are_refused(self):
        # Logical ids keep letters and digits only (&{Org}), and CloudFormation's collection
        # must be a list or a Ref to one (Fn::Split there is refused by cfn-lint), so
        # acme-corp, acmecorp and acme_corp cannot each get their own: the expansion refuses the
        # list instead of merging their schedules (as the deploy's transform and cfn-lint do).
        with self.assertRaisesRegex(InvalidSamDocumentException, "conflict.*OrgScheduleacmecorp"), \
                self.assertLogs("samcli", "ERROR"):
            expanded({"Organizations": "acme-corp,acmecorp,acme_corp"})
        self.assertIn("cannot share a stack", PARAMETERS["Organizations"]["Description"])

    def test_the_token_goes_over_https_or_to_loopback_only(self):
        for good in ["https://hub.docker.com", "https://hub.docker.com/v2", "http://127.0.0.1:8080",
                     "http://127.0.0.1", "http://127.1.2.3:1/x", "http://localhost:5000", "http://[::1]:9"]:
            self.assertTrue(allowed("DockerHubUrl", good), good)
        for bad in ["http://hub.docker.com", "http://127.0.0.1.evil.example", "http://localhost.evil.example",
                    "http://localhost@evil.example", "http://127.0.0.1:80@evil.example/", "ftp://hub.docker.com",
                    "https://", "HTTP://127.0.0.1", "", "hub.docker.com"]:
            self.assertFalse(allowed("DockerHubUrl", bad), bad)
        self.assertTrue(allowed("DockerHubUrl", PARAMETERS["DockerHubUrl"]["Default"]))

    def test_the_role_creates_objects_only_with_if_none_match_and_deletes_nothing(self):
        statements = role_statements()
        puts = [st for st in statements if "s3:PutObject" in actions_of(st)]
        self.assertEqual(len(puts), 1)
        self.assertEqual(actions_of(puts[0]), ["s3:PutObject"])
        # S3's condition key for the If-None-Match header ("Enforce conditional writes"):
        # present, or the request is not allowed.
        self.assertEqual(puts[0]["Condition"], {"Null": {"s3:if-none-match": "false"}})
        for st in statements + [s for s in RESOURCES["SchedulerRole"]["Properties"]["Policies"][0]
                                ["PolicyDocument"]["Statement"]]:
            for action in actions_of(st):
                self.assertNotIn("*", action, st)
                self.assertFalse(action.lower().startswith("s3:delete"), st)
                self.assertNotIn(action, ["s3:PutObjectRetention", "s3:BypassGovernanceRetention",
                                          "s3:PutObjectLegalHold", "s3:PutLifecycleConfiguration"])
        # The code writes each object with one PutObject and If-None-Match: *, never a
        # multipart upload (which the condition would refuse).
        sink = (ROOT / "src/sink/s3.rs").read_text()
        self.assertIn('.if_none_match("*")', sink)
        self.assertNotIn("multipart", sink.lower())

    def test_the_compactor_writes_only_below_compacted_and_deletes_nothing(self):
        statements = role_statements("CompactorRole")
        for st in statements:
            for action in actions_of(st):
                self.assertNotIn("*", action, st)
                self.assertFalse(action.lower().startswith("s3:delete"), st)
                self.assertNotIn(action, ["s3:PutObjectRetention", "s3:BypassGovernanceRetention",
                                          "s3:PutObjectLegalHold", "s3:PutLifecycleConfiguration"])
        bucket = f"arn:aws:s3:::{DEPLOYED['Bucket']}/"
        prefix = DEPLOYED["KeyPrefix"]

        def may(action, key):
            return any(iam_like(arn, bucket + key) for st in statements if action in actions_of(st)
                       for arn in (lambda r: r if isinstance(r, list) else [r])(resolve(st["Resource"])))
        compacted = f"{prefix}/compacted/org=acme/dt=2026-01-02/events.parquet"
        raw = f"{prefix}/org=acme/dt=2026-01-02/2026-01-02T00:00:00Z-abc.json.gz"
        self.assertTrue(may("s3:PutObject", compacted))
        # Never the raw trail, nor anything else outside PREFIX/compacted/.
        for key in [raw, f"{prefix}/_quarantine/org=acme/x.json", f"{prefix}/compacted", f"{prefix}/compactedx/y",
                    "compacted/org=acme/dt=2026-01-02/events.parquet", f"other/{prefix}/compacted/x",
                    f"{prefix}/org=acme/compacted/x"]:
            self.assertFalse(may("s3:PutObject", key), key)
        # Without a condition: it replaces its own derived object when a day is compacted again.
        [put] = [st for st in statements if "s3:PutObject" in actions_of(st)]
        self.assertEqual((actions_of(put), put.get("Condition")), (["s3:PutObject"], None))
        # It reads the raw trail and its own objects, not the quarantine.
        for key in [raw, compacted]:
            self.assertTrue(may("s3:GetObject", key), key)
        self.assertFalse(may("s3:GetObject", f"{prefix}/_quarantine/org=acme/x.json"))
        self.assertFalse(may("s3:GetObject", f"other/{raw}"))
        # Listing: the same two places.
        [listing] = [st for st in statements if actions_of(st) == ["s3:ListBucket"]]
        self.assertEqual(resolve(listing["Resource"]), f"arn:aws:s3:::{DEPLOYED['Bucket']}")
        patterns = resolve(listing["Condition"]["StringLike"]["s3:prefix"])
        self.assertEqual(set(listing["Condition"]), {"StringLike"})
        for listed in [f"{prefix}/org=acme/", f"{prefix}/org=acme/dt=2026-01-02/", f"{prefix}/compacted/org=acme/"]:
            self.assertTrue(any(iam_like(pt, listed) for pt in patterns), listed)
        for outside in ["", f"{prefix}/", f"{prefix}/_quarantine/", "other/", f"{prefix}-other/org=acme/"]:
            self.assertFalse(any(iam_like(pt, outside) for pt in patterns), outside)
        # The checkpoint: read only.
        [ddb] = [st for st in statements if any(a.startswith("dynamodb:") for a in actions_of(st))]
        self.assertEqual(actions_of(ddb), ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:UpdateItem"])
        [collector] = [st for st in role_statements() if st["Sid"] == "CheckpointsAndLeases"]
        self.assertEqual(ddb["Resource"], collector["Resource"])

    def test_glue_rights_reach_the_view_only(self):
        glue = "arn:aws:glue:us-east-1:123456789012:"
        db = DEPLOYED["GlueDatabase"]
        view = [f"{glue}catalog", f"{glue}database/{db}", f"{glue}table/{db}/events"]
        for role in ["FunctionRole", "CompactorRole"]:
            statements = [st for st in role_statements(role) if any(a.startswith("glue:") for a in actions_of(st))]
            self.assertEqual(len(statements), 1, role)
            [st] = statements
            self.assertEqual(actions_of(st), ["glue:GetTable", "glue:UpdateTable"], role)
            self.assertEqual(resolve(st["Resource"]), view, role)
            # The view is the VIRTUAL_VIEW `events`; the tables under it are out of reach.
            for table in ["events_raw", "events_compacted", "*", "other"]:
                self.assertFalse(any(iam_like(arn, f"{glue}table/{db}/{table}") for arn in resolve(st["Resource"])),
                                 (role, table))
            self.assertEqual(st["Resource"][2],
                             {"Fn::Sub": "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:table/"
                                         "${GlueDatabase}/${GlueTable}"})
        self.assertEqual(RESOURCES["GlueTable"]["Properties"]["TableInput"]["TableType"], "VIRTUAL_VIEW")

    def test_listing_stays_below_the_key_prefix(self):
        [listing] = [st for st in role_statements() if st["Action"] == "s3:ListBucket"]
        pattern = listing["Condition"]["StringLike"]["s3:prefix"]
        self.assertEqual(pattern, {"Fn::Sub": "${KeyPrefix}/*"})
        # Every listing of the S3 sink is below `<KeyPrefix>/` (its prefix, with the slash):
        # an org's folder, a day's folder (the exact prefix of one org and day), and one
        # object's full key (`exists`, which lists the key: a HeadObject of a missing key
        # carries no s3:prefix, so S3 would answer it 403).
        sink = (ROOT / "src/sink/s3.rs").read_text()
        self.assertEqual(re.findall(r"^\s*\.prefix\((.*)\)$", sink, re.M),
                         ['format!("{}{prefix}", self.prefix)', "self.key(key)"])
        self.assertIn('format!("{}{}", self.prefix, key.0)', sink)
        self.assertNotIn("head_object", sink)
        self.assertIn('format!("{p}/")', sink)
        key_prefix = PARAMETERS["KeyPrefix"]["Default"]
        like = pattern["Fn::Sub"].replace("${KeyPrefix}", key_prefix)
        for listed in ["org=acme/", "org=acme/dt=2026-11-25/", "org=acme-corp_2/dt=2026-01-01/"]:
            self.assertTrue(iam_like(like, f"{key_prefix}/{listed}"), listed)
        for outside in ["", "other/", key_prefix, f"{key_prefix}-other/org=acme/"]:
            self.assertFalse(iam_like(like, outside), outside)
        # KeyPrefix becomes part of ARNs and of that pattern: no wildcards in it.
        for bad in ["a*", "a?b", "*", "a/*"]:
            self.assertFalse(allowed("KeyPrefix", bad), bad)
        self.assertTrue(allowed("KeyPrefix", "dockerhub-audit/prod"))

    def test_the_kms_key_is_used_only_through_s3(self):
        [kms] = [st for st in role_statements() if "kms:Decrypt" in actions_of(st)]
        self.assertEqual(kms["Condition"],
                         {"StringEquals": {"kms:ViaService": {"Fn::Sub": "s3.${AWS::Region}.amazonaws.com"}}})

    def test_only_this_stacks_schedules_can_use_the_scheduler_role(self):
        [trust] = RESOURCES["SchedulerRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        self.assertEqual(trust["Principal"], {"Service": "scheduler.amazonaws.com"})
        self.assertEqual(trust["Condition"]["StringEquals"], {"aws:SourceAccount": {"Ref": "AWS::AccountId"}})
        self.assertEqual(trust["Condition"]["ArnLike"], {"aws:SourceArn": {"Fn::Sub":
            "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule-group/${ScheduleGroup}"}})
        # ... the group every schedule is in.
        for _, schedule in resources_of("AWS::Scheduler::Schedule"):
            self.assertEqual(schedule["Properties"]["GroupName"], {"Ref": "ScheduleGroup"})
            self.assertEqual(schedule["Properties"]["Target"]["RoleArn"], {"Fn::GetAtt": ["SchedulerRole", "Arn"]})

    def test_object_lock_mode_is_governance_or_compliance(self):
        mode = PARAMETERS["ObjectLockMode"]
        self.assertEqual((mode["Default"], mode["AllowedValues"]), ("GOVERNANCE", ["GOVERNANCE", "COMPLIANCE"]))
        lock = RESOURCES["Bucket"]["Properties"]["ObjectLockConfiguration"]["Fn::If"][1]["Rule"]["DefaultRetention"]
        self.assertEqual(lock, {"Mode": {"Ref": "ObjectLockMode"}, "Days": {"Ref": "ObjectLockDays"}})
        # What each means for deleting the stack's bucket is documented where it is chosen.
        for text in [mode["Description"], AWS_DOC.split("### Teardown", 1)[1].split("\n## ", 1)[0]]:
            self.assertIn("COMPLIANCE", text)
            self.assertIn("s3:BypassGovernanceRetention", text)
        self.assertIn("`ObjectLockMode`", AWS_DOC)

    def test_only_the_function_can_put_alerts_and_undeliverable_ones_are_kept(self):
        bus = RESOURCES["AlertEventBus"]["Properties"]
        statements = {st["Sid"]: st for st in bus["Policy"]["Statement"]}
        arn = {"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/"
                          + bus["Name"]["Fn::Sub"]}
        role = {"Fn::GetAtt": ["FunctionRole", "Arn"]}
        deny = statements["NobodyElseSendsAlerts"]
        # The Deny is what restricts: in the same account an Allow alone restricts nobody.
        self.assertEqual((deny["Effect"], deny["Principal"], deny["Action"], deny["Resource"]),
                         ("Deny", "*", "events:PutEvents", arn))
        self.assertEqual(deny["Condition"], {"ArnNotEquals": {"aws:PrincipalArn": role}})
        allow = statements["CollectorSendsAlerts"]
        self.assertEqual((allow["Effect"], allow["Principal"], allow["Action"], allow["Resource"]),
                         ("Allow", {"AWS": role}, "events:PutEvents", arn))
        self.assertEqual(set(statements), {"NobodyElseSendsAlerts", "CollectorSendsAlerts"})
        # Undeliverable alerts: retried for a day, then kept in their own queue, alarmed.
        [target] = RESOURCES["AlertRule"]["Properties"]["Targets"]
        self.assertEqual(target["RetryPolicy"], {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400})
        self.assertEqual(target["DeadLetterConfig"], {"Arn": {"Fn::GetAtt": ["AlertDeadLetterQueue", "Arn"]}})
        queue_policy = RESOURCES["AlertDeadLetterQueuePolicy"]["Properties"]
        self.assertEqual(queue_policy["Queues"], [{"Ref": "AlertDeadLetterQueue"}])
        [st] = queue_policy["PolicyDocument"]["Statement"]
        self.assertEqual((st["Effect"], st["Principal"], st["Action"], st["Resource"]),
                         ("Allow", {"Service": "events.amazonaws.com"}, "sqs:SendMessage",
                          {"Fn::GetAtt": ["AlertDeadLetterQueue", "Arn"]}))
        self.assertEqual(st["Condition"], {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["AlertRule", "Arn"]}}})
        alarm = RESOURCES["AlertDeadLetterAlarm"]["Properties"]
        self.assertEqual((alarm["Namespace"], alarm["MetricName"], alarm["Dimensions"]),
                         ("AWS/SQS", "NumberOfMessagesSent",
                          [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["AlertDeadLetterQueue", "QueueName"]}}]))
        self.assertEqual(alarm["AlarmActions"], [{"Ref": "AlarmTopic"}])
        self.assertIn("`AlertDeadLetterAlarm`", AWS_DOC)

    def test_the_cli_policy_follows_the_same_rules(self):
        # The workstation's policy: the function's data statements with the same conditions
        # (the template's defaults in place of its parameters), and nothing that deletes.
        policy = json.loads((ROOT / "infra/iam/cli-backfill-policy.json").read_text())
        defaults = {"<KeyPrefix>": PARAMETERS["KeyPrefix"]["Default"], "<region>": "REGION"}
        function = {}
        for actions, _, condition in function_statements():
            if condition:
                for placeholder, value in defaults.items():
                    condition = condition.replace(placeholder, value)
            # The watchdog's actions are the Lambda's alone (its Scan of every checkpoint too).
            function[actions - WATCHDOG_ONLY] = condition
        for st in policy["Statement"]:
            actions = frozenset(actions_of(st))
            self.assertIn(actions, function, st["Sid"])
            self.assertEqual(readable_condition(st.get("Condition")), function[actions], st["Sid"])
            self.assertFalse(any(a.lower().startswith("s3:delete") or "*" in a for a in actions), st["Sid"])
        conditions = {frozenset(actions_of(st)): readable_condition(st.get("Condition")) for st in policy["Statement"]}
        self.assertEqual(conditions[frozenset(["s3:PutObject"])], "Null s3:if-none-match=false")
        self.assertEqual(conditions[frozenset(["s3:ListBucket"])], "StringLike s3:prefix=dockerhub-audit/*")


if __name__ == "__main__":
    unittest.main()
