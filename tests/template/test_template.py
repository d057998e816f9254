"""Checks that template.yaml agrees with the code, the README and infra/, offline.

Run by ./scripts/test with the SAM venv's Python (cfn-lint's parser reads the template's
short-form intrinsics): python -m unittest discover -s tests/template
"""
import json
import pathlib
import re
import subprocess
import sys
import tomllib
import unittest

from cfnlint.decode import decode

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEMPLATE, MATCHES = decode(str(ROOT / "template.yaml"))
RESOURCES = TEMPLATE["Resources"]
README = (ROOT / "README.md").read_text()


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


# How README.md writes what the template computes (see "IAM permissions").
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


def function_statements():
    out = []
    for policy in RESOURCES["FunctionRole"]["Properties"]["Policies"]:
        if "Fn::If" in policy:
            policy = policy["Fn::If"][1]
        for st in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in st:
                # A statement of an optional feature (alerts): the branch that has it.
                st = st["Fn::If"][1]
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            out.append((frozenset(actions), readable(st["Resource"])))
    return out


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
        self.assertNotIn("Default", TEMPLATE["Parameters"]["Organizations"], "Organizations is required")
        self.assertEqual(TEMPLATE["Parameters"]["Architecture"]["Default"], "arm64")
        outputs = set(TEMPLATE["Outputs"])
        for o in ["FunctionName", "BucketName", "TableName", "GlueDatabase", "GlueTable", "WorkGroup",
                  "DeadLetterQueueUrl", "AlarmTopicArn", "AlertBusName", "AlertTopicArn"]:
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
                         "DOCKERHUB_AUDIT_ALERT_BUS", "DOCKERHUB_AUDIT_ALERT_RULES_S3"]:
            self.assertIn(required, env)

    def test_iam_is_least_privilege_and_the_readme_table_says_the_same(self):
        statements = function_statements()
        for actions, resource in statements:
            self.assertNotEqual(resource, "*", f"{actions} on every resource")
        section = README.split("### IAM permissions", 1)[1].split("\n#", 1)[0]
        rows = []
        for line in section.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) >= 3 and cells[0].startswith("`") and ":" in cells[0]:
                actions = frozenset(a.strip(" `") for a in cells[0].split(","))
                resource = cells[1].strip("`")
                rows.append((actions, resource))
        self.assertEqual(sorted(rows, key=str), sorted(statements, key=str))

    def test_the_cli_policy_holds_the_functions_data_actions(self):
        policy = json.loads((ROOT / "infra/iam/cli-backfill-policy.json").read_text())
        cli = set()
        for st in policy["Statement"]:
            cli |= set(st["Action"] if isinstance(st["Action"], list) else [st["Action"]])
            self.assertNotEqual(st["Resource"], "*")
        function = set().union(*(a for a, _ in function_statements()))
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
        self.assertEqual(lock["Rule"]["DefaultRetention"]["Mode"], "GOVERNANCE")
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
        self.assertEqual(rule["EventPattern"], {"source": ["dockerhub-audit"]})
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
        # The function may put events on that bus only, and only when alerts are on.
        statements = RESOURCES["FunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        [put] = [st for st in statements if "Fn::If" in st and st["Fn::If"][1]["Action"] == "events:PutEvents"]
        self.assertEqual(put["Fn::If"][0], "AlertsOn")
        self.assertEqual(put["Fn::If"][2], {"Ref": "AWS::NoValue"})
        resource = put["Fn::If"][1]["Resource"]
        self.assertNotEqual(resource, "*")
        self.assertEqual(resource, {"Fn::Sub": [
            "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${Bus}", {"Bus": bus}]})

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


if __name__ == "__main__":
    unittest.main()
