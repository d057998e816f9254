"""Checks that template.yaml agrees with the code, the docs and infra/, offline.

Run by ./scripts/test with the SAM venv's Python (cfn-lint's parser reads the template's
short-form intrinsics): python -m unittest discover -s tests/template
"""
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


def rust_strings(path, const):
    """The string items of `pub const NAME: [&str; N] = [...]` in a Rust file."""
    text = (ROOT / path).read_text()
    m = re.search(rf"pub const {const}: \[&str; \d+\] = \[(.*?)\];", text, re.S)
    assert m, f"{const} not found in {path}"
    return re.findall(r'"([^"]+)"', m.group(1))


# How docs/aws.md writes what the template computes (see "IAM permissions").
PSEUDO = {"${AWS::Partition}": "aws", "${AWS::Region}": "<region>", "${AWS::AccountId}": "<account>"}
# The variables of Fn::Sub's second form.
SUB_VARS = {"${Name}": "<bucket>", "${Bus}": "<alert bus>", "${RulesObject}": "<rules bucket>/<rules key>"}
ATTS = {
    ("Table", "Arn"): "arn:aws:dynamodb:<region>:<account>:table/<table>",
    ("DeadLetterQueue", "Arn"): "arn:aws:sqs:<region>:<account>:<dead-letter queue>",
    ("FunctionLogGroup", "Arn"): "arn:aws:logs:<region>:<account>:log-group:<log group>:*",
}


def readable(resource):
    if isinstance(resource, str):
        return resource
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
        return f"<{resource['Ref']}>"
    raise AssertionError(f"unexpected resource form {resource}")


def readable_condition(condition):
    """`Operator key=value` per condition key, `; `-separated, as docs/aws.md writes them;
    None without a condition."""
    if not condition:
        return None
    return "; ".join(f"{op} {key}={readable(value)}"
                     for op, keys in condition.items() for key, value in keys.items())


def role_statements():
    """The statements of the function's role, the optional ones as when enabled."""
    out = []
    for policy in RESOURCES["FunctionRole"]["Properties"]["Policies"]:
        if "Fn::If" in policy:
            policy = policy["Fn::If"][1]
        for st in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in st:
                # A statement of an optional feature (alerts): the branch that has it.
                st = st["Fn::If"][1]
            out.append(st)
    return out


def actions_of(statement):
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


def function_statements():
    return [(frozenset(actions_of(st)), readable(st["Resource"]), readable_condition(st.get("Condition")))
            for st in role_statements()]


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
        # Alerts are on by default, to a bus the stack creates, with the built-in rules.
        defaults = {k: TEMPLATE["Parameters"][k]["Default"]
                    for k in ["Alerts", "AlertBus", "AlertEmail", "AlertRulesS3Uri"]}
        self.assertEqual(defaults, {"Alerts": "true", "AlertBus": "", "AlertEmail": "", "AlertRulesS3Uri": ""})
        self.assertEqual(TEMPLATE["Parameters"]["Organizations"]["Type"], "CommaDelimitedList")
        # A placeholder, refused at deploy (see the Rules test): `sam build` needs no org list.
        self.assertEqual(TEMPLATE["Parameters"]["Organizations"]["Default"], "SET-ME")
        self.assertEqual(TEMPLATE["Parameters"]["Architecture"]["Default"], "arm64")
        outputs = set(TEMPLATE["Outputs"])
        for o in ["FunctionName", "BucketName", "TableName", "GlueDatabase", "GlueTable", "WorkGroup",
                  "DeadLetterQueueUrl", "AlarmTopicArn", "AlertBusName", "AlertTopicArn", "AlertDeadLetterQueueUrl"]:
            self.assertIn(o, outputs)

    def test_one_schedule_per_org_with_retries_and_a_dead_letter_queue(self):
        loop = RESOURCES["Fn::ForEach::Schedules"]
        self.assertEqual(loop[0], "Org")
        self.assertEqual(loop[1], {"Ref": "Organizations"})
        self.assertEqual(set(loop[2]), {"OrgSchedule&{Org}", "OrgVerifySchedule&{Org}"})
        inputs = {
            "OrgSchedule&{Org}": '{"org": "${Org}"}',
            "OrgVerifySchedule&{Org}": '{"org": "${Org}", "verify": "${VerifyRange}", "repair": true}',
        }
        for name, schedule in loop[2].items():
            target = schedule["Properties"]["Target"]
            self.assertEqual(target["Input"], {"Fn::Sub": inputs[name]})
            self.assertIn("RetryPolicy", target)
            self.assertEqual(target["DeadLetterConfig"]["Arn"], {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]})
        verify = loop[2]["OrgVerifySchedule&{Org}"]["Properties"]
        self.assertEqual(verify["ScheduleExpression"], {"Ref": "VerifyScheduleExpression"})
        on_failure = RESOURCES["Function"]["Properties"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
        self.assertEqual(on_failure["Destination"], {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]})

    def test_the_function_is_the_lean_lambda_binary_below_the_period(self):
        fn = RESOURCES["Function"]
        self.assertEqual(fn["Metadata"]["BuildMethod"], "rust-cargolambda")
        self.assertEqual(fn["Metadata"]["BuildProperties"]["Binary"], "dockerhub-audit-lambda")
        self.assertEqual(fn["Properties"]["Runtime"], "provided.al2023")
        self.assertLess(fn["Properties"]["Timeout"], 300)
        cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
        build = cargo["package"]["metadata"]["lambda"]["build"]
        self.assertTrue(build["no_default_features"])
        self.assertEqual(build["features"], ["lambda"], "sam build must not bring the CLI features")

    def test_the_environment_names_variables_the_lambda_reads(self):
        settings = (ROOT / "src/lambda/settings.rs").read_text()
        known = set(re.findall(r'pub const ENV_\w+: &str = "(\w+)";', settings))
        env = RESOURCES["Function"]["Properties"]["Environment"]["Variables"]
        self.assertTrue(set(env) <= known, set(env) - known)
        for required in ["DOCKERHUB_AUDIT_TABLE", "DOCKERHUB_AUDIT_BUCKET", "DOCKERHUB_AUDIT_SECRET_PATTERN",
                         "DOCKERHUB_AUDIT_ALERT_BUS", "DOCKERHUB_AUDIT_ALERT_RULES_S3", "DOCKERHUB_AUDIT_ORGS"]:
            self.assertIn(required, env)
        # The function's allow-list is exactly the orgs the stack schedules.
        self.assertEqual(env["DOCKERHUB_AUDIT_ORGS"], {"Fn::Join": [",", {"Ref": "Organizations"}]})
        self.assertEqual(RESOURCES["Fn::ForEach::Schedules"][1], {"Ref": "Organizations"})

    def test_iam_is_least_privilege_and_the_documented_table_says_the_same(self):
        statements = function_statements()
        for actions, resource, _ in statements:
            self.assertNotEqual(resource, "*", f"{actions} on every resource")
        section = AWS_DOC.split("### IAM permissions", 1)[1].split("\n#", 1)[0]
        rows = []
        for line in section.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) >= 4 and cells[0].startswith("`") and ":" in cells[0]:
                actions = frozenset(a.strip(" `") for a in cells[0].split(","))
                resource = cells[1].strip("`")
                rows.append((actions, resource, cells[2].strip("`") or None))
        self.assertEqual(sorted(rows, key=str), sorted(statements, key=str))

    def test_the_cli_policy_holds_the_functions_data_actions(self):
        policy = json.loads((ROOT / "infra/iam/cli-backfill-policy.json").read_text())
        cli = set()
        for st in policy["Statement"]:
            cli |= set(st["Action"] if isinstance(st["Action"], list) else [st["Action"]])
            self.assertNotEqual(st["Resource"], "*")
        function = set().union(*(a for a, _, _ in function_statements()))
        # Logs, the dead-letter queue and alerts are the Lambda's alone.
        self.assertEqual(cli, function - {"logs:CreateLogStream", "logs:PutLogEvents", "sqs:SendMessage",
                                          "events:PutEvents"})

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
        self.assertIn("OrgRunsFailedAlarm&{Org}", seen)
        self.assertIn("OrgThrottlingAlarm&{Org}", seen)
        self.assertEqual(seen["MissingEventsAlarm"]["MetricName"], "EventsMissing")
        failed = seen["AlertsFailedAlarm"]
        self.assertEqual((failed["MetricName"], failed.get("Dimensions"), failed["Statistic"], failed["Period"]),
                         ("AlertsFailed", None, "Sum", 900))
        self.assertEqual((failed["Threshold"], failed["ComparisonOperator"], failed["TreatMissingData"]),
                         (1, "GreaterThanOrEqualToThreshold", "notBreaching"))

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
        self.assertEqual(env["DOCKERHUB_AUDIT_ALERT_BUS"], {"Fn::If": ["AlertsOn", bus, ""]})
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

    def test_glue_table_duckdb_view_and_ddl_agree(self):
        ddl = (ROOT / "infra/athena/events-table.sql").read_text()
        body = ddl.split("CREATE EXTERNAL TABLE", 1)[1].split("PARTITIONED BY", 1)[0]
        ddl_columns = re.findall(r"`(\w+)` ([^\n]+?),?\n", body)
        table = RESOURCES["GlueTable"]["Properties"]["TableInput"]
        columns = [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]
        self.assertEqual(columns, ddl_columns)
        self.assertEqual([k["Name"] for k in table["PartitionKeys"]], ["org", "dt"])
        ddl_props = dict(re.findall(r"'([\w.]+)' = '([^']*)'", ddl.split("TBLPROPERTIES", 1)[1]))
        self.assertEqual(set(ddl_props), set(table["Parameters"]))
        self.assertEqual(table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"],
                         "org.apache.hive.hcatalog.data.JsonSerDe")
        duck = (ROOT / "infra/duckdb/events.sql").read_text()
        duck_columns = re.findall(r"'(\w+)': '([^']+)'", duck.split("columns = {", 1)[1])
        self.assertEqual([c for c, _ in duck_columns], [c for c, _ in ddl_columns])
        hive_to_duck = {"string": "VARCHAR", "map<string,string>": "MAP(VARCHAR, VARCHAR)"}
        for (name, hive), (_, duck_type) in zip(ddl_columns, duck_columns):
            if hive.startswith("struct<"):
                fields = re.findall(r"(\w+):string", hive)
                self.assertEqual(duck_type, "STRUCT(" + ", ".join(f"{f} VARCHAR" for f in fields) + ")", name)
            else:
                self.assertEqual(duck_type, hive_to_duck[hive], name)

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
        self.assertTrue(read["Resource"]["Fn::Sub"].endswith(":secret:${SecretPrefix}*"))

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
        # layout is incorrect". So do scripts/test's build line and samconfig's build section.
        expanded({"Architecture": "x86_64"})
        build = re.search(r"sam build --parameter-overrides (.+)", (ROOT / "scripts/test").read_text())
        expanded(overrides_of(build.group(1)))
        config = tomllib.loads((ROOT / "samconfig.toml").read_text())["default"]["build"]["parameters"]
        self.assertNotIn("Organizations", overrides_of(config["parameter_overrides"]))
        expanded(overrides_of(config["parameter_overrides"]))

    def test_each_org_gets_its_own_schedules_with_its_own_input(self):
        orgs = ["acme-corp", "example", "a_b", "x" * 56]
        resources = expanded({"Organizations": ",".join(orgs)})["Resources"]
        schedules = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Scheduler::Schedule"]
        self.assertEqual(len(schedules), 2 * len(orgs))
        for org in orgs:
            mine = [s for s in schedules if json.loads(s["Target"]["Input"])["org"] == org]
            self.assertEqual(sorted(s["Name"] for s in mine), [f"collect-{org}", f"verify-{org}"])
            alarms = [r for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"
                      and r["Properties"].get("Dimensions") == [{"Name": "org", "Value": org}]]
            self.assertEqual(len(alarms), 3, org)

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
        for schedule in RESOURCES["Fn::ForEach::Schedules"][2].values():
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
            function[actions] = condition
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
