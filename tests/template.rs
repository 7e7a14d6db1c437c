//! What `cfn-lint` and `sam validate --lint` (both run by `scripts/test`) cannot know
//! about `deploy/template.yaml`: that its table is the one `valine init` creates
//! (`TABLE_SCHEMA`, the one source of truth), the names and routes operators and the
//! runbook use, the queue's redrive and encryption, the alarms' thresholds, log
//! retention, tracing, the rollback on alarms, least-privilege policies, parameter
//! constraints that agree with Valine's own configuration checks, the outputs, and
//! `deploy/samconfig.toml`'s two environments.

#![cfg(feature = "aws")]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use serde_json::{Map, Value, json};
use valine::config::Config;
use valine::store::StoreLocation;
use valine::store::dynamodb::TABLE_SCHEMA;

// ---------------------------------------------------------------------------------------
// Reading the template
// ---------------------------------------------------------------------------------------

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// The template as JSON, with CloudFormation's short tags in their long form
/// (`!Sub x` → `{"Fn::Sub": x}`, `!Ref x` → `{"Ref": x}`, `!GetAtt A.B` →
/// `{"Fn::GetAtt": ["A", "B"]}`), so a test compares one spelling.
static TEMPLATE: LazyLock<Value> = LazyLock::new(|| {
    let path = deploy_dir().join("template.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let yaml: yaml_serde::Value =
        yaml_serde::from_str(&text).expect("deploy/template.yaml is valid YAML");
    to_json(yaml)
});

fn to_json(yaml: yaml_serde::Value) -> Value {
    use yaml_serde::Value as Y;
    match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => serde_json::to_value(n).expect("a YAML number is a JSON number"),
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Y::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        Y::String(s) => s,
                        other => panic!("a non-string key in the template: {other:?}"),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let tag = tag.trim_start_matches('!');
            let value = to_json(tagged.value);
            let (name, value) = match (tag, value) {
                ("Ref", v) => ("Ref".to_owned(), v),
                ("Condition", v) => ("Condition".to_owned(), v),
                ("GetAtt", Value::String(s)) => {
                    let (resource, attribute) =
                        s.split_once('.').expect("!GetAtt Resource.Attribute");
                    ("Fn::GetAtt".to_owned(), json!([resource, attribute]))
                }
                (other, v) => (format!("Fn::{other}"), v),
            };
            json!({ name: value })
        }
    }
}

fn template() -> &'static Value {
    &TEMPLATE
}

fn resources() -> &'static Map<String, Value> {
    template()["Resources"]
        .as_object()
        .expect("the template has Resources")
}

fn resource(id: &str) -> &'static Value {
    resources()
        .get(id)
        .unwrap_or_else(|| panic!("the template has no resource {id}"))
}

fn props(id: &str) -> &'static Value {
    &resource(id)["Properties"]
}

fn resources_of_type(kind: &str) -> Vec<(&'static str, &'static Value)> {
    resources()
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .map(|(id, r)| (id.as_str(), r))
        .collect()
}

fn sub(s: &str) -> Value {
    json!({ "Fn::Sub": s })
}

fn reference(id: &str) -> Value {
    json!({ "Ref": id })
}

fn get_att(id: &str, attribute: &str) -> Value {
    json!({ "Fn::GetAtt": [id, attribute] })
}

/// A value that is one item or a list of them, as a list.
fn list(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        one => vec![one],
    }
}

fn number(value: &Value) -> f64 {
    match value {
        Value::Number(n) => n.as_f64().expect("a finite number"),
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("not a number: {s:?}")),
        other => panic!("not a number: {other}"),
    }
}

// ---------------------------------------------------------------------------------------
// The three functions
// ---------------------------------------------------------------------------------------

struct Function {
    id: &'static str,
    /// The function's name with `${Stage}` unresolved, as the template's `!Sub` has it.
    name: &'static str,
    /// What the function must answer within, in seconds (Discord's and GitHub's limits;
    /// the worker has none from outside).
    answer_within: Option<f64>,
}

const DISCORD: Function = Function {
    id: "DiscordFunction",
    name: "valine-orchestrator-discord-${Stage}",
    answer_within: Some(3.0),
};
const GITHUB: Function = Function {
    id: "GitHubFunction",
    name: "valine-orchestrator-github-${Stage}",
    answer_within: Some(10.0),
};
const WORKER: Function = Function {
    id: "WorkerFunction",
    name: "valine-orchestrator-worker-${Stage}",
    answer_within: None,
};
const FUNCTIONS: [&Function; 3] = [&DISCORD, &GITHUB, &WORKER];

/// A function property, the function's own or else the one in `Globals`.
fn function_prop(f: &Function, key: &str) -> &'static Value {
    let own = &props(f.id)[key];
    if own.is_null() {
        &template()["Globals"]["Function"][key]
    } else {
        own
    }
}

fn timeout(f: &Function) -> f64 {
    number(function_prop(f, "Timeout"))
}

fn events(f: &Function) -> Vec<&'static Value> {
    props(f.id)["Events"]
        .as_object()
        .map(|events| events.values().collect())
        .unwrap_or_default()
}

/// The functions' environment (one, shared by all three: see
/// `every_function_has_the_one_environment`).
fn environment() -> &'static Map<String, Value> {
    props(DISCORD.id)["Environment"]["Variables"]
        .as_object()
        .expect("DiscordFunction's Environment.Variables")
}

#[test]
fn there_are_exactly_the_three_functions() {
    let ids: BTreeSet<_> = resources_of_type("AWS::Serverless::Function")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let expected: BTreeSet<_> = FUNCTIONS.iter().map(|f| f.id).collect();
    assert_eq!(ids, expected);
    // The runtime lives in Globals, so no function may quietly differ.
    for f in FUNCTIONS {
        for key in ["Runtime", "Handler", "CodeUri", "Tracing", "MemorySize"] {
            assert!(
                props(f.id)[key].is_null(),
                "{} sets its own {key}: keep it in Globals",
                f.id
            );
        }
    }
}

#[test]
fn every_function_has_the_one_environment() {
    // Not in Globals: CloudFormation's language extensions resolve parameters in
    // Resources but not in Globals, and SAM publishes a new version only when the
    // resolved properties change. From Globals a changed setting would reach $LATEST
    // only, never the alias the API and the queue call.
    assert!(template()["Globals"]["Function"]["Environment"].is_null());
    for f in FUNCTIONS {
        assert_eq!(
            props(f.id)["Environment"]["Variables"].as_object(),
            Some(environment()),
            "{}",
            f.id
        );
    }
}

#[test]
fn functions_run_the_one_valine_binary_on_provided_al2023() {
    for f in FUNCTIONS {
        assert_eq!(props(f.id)["FunctionName"], sub(f.name), "{}", f.id);
        assert_eq!(
            resource(f.id)["Metadata"]["BuildMethod"],
            "rust-cargolambda",
            "{}",
            f.id
        );
        assert_eq!(
            resource(f.id)["Metadata"]["BuildProperties"]["Binary"],
            "valine",
            "{}",
            f.id
        );
        assert_eq!(function_prop(f, "Runtime"), "provided.al2023", "{}", f.id);
        assert_eq!(function_prop(f, "Handler"), "bootstrap", "{}", f.id);
        assert_eq!(function_prop(f, "Tracing"), "Active", "{}", f.id);
        let alias = function_prop(f, "AutoPublishAlias");
        assert!(alias.as_str().is_some_and(|a| !a.is_empty()), "{}", f.id);
        // Without it a changed setting updates $LATEST only, and the alias the API and
        // the queue call keeps the old environment.
        assert_eq!(
            function_prop(f, "AutoPublishAliasAllProperties"),
            true,
            "{}",
            f.id
        );
        let arch = list(function_prop(f, "Architectures"));
        assert!(
            arch == [&json!("arm64")] || arch == [&json!("x86_64")],
            "{}: one architecture, got {arch:?}",
            f.id
        );
        // CodeUri is this crate, relative to the template's folder.
        let code = function_prop(f, "CodeUri")
            .as_str()
            .expect("CodeUri is a path");
        let manifest = std::fs::read_to_string(deploy_dir().join(code).join("Cargo.toml"))
            .expect("CodeUri holds a Cargo.toml");
        let manifest: toml::Table = manifest.parse().expect("Cargo.toml");
        assert_eq!(manifest["package"]["name"].as_str(), Some("valine"));
    }
}

#[test]
fn http_api_routes_match_the_server() {
    let routes = |f: &Function| -> BTreeSet<(String, String)> {
        events(f)
            .into_iter()
            .filter(|e| e["Type"] == "HttpApi")
            .map(|e| {
                let p = &e["Properties"];
                assert_eq!(p["ApiId"], reference("HttpApi"), "{}", f.id);
                assert_eq!(p["PayloadFormatVersion"], "2.0", "{}", f.id);
                (
                    p["Method"].as_str().expect("Method").to_ascii_uppercase(),
                    p["Path"].as_str().expect("Path").to_owned(),
                )
            })
            .collect()
    };
    let owned = |pairs: &[(&str, &str)]| -> BTreeSet<(String, String)> {
        pairs
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect()
    };
    assert_eq!(
        routes(&DISCORD),
        owned(&[("POST", "/discord/interactions"), ("POST", "/discord")])
    );
    assert_eq!(routes(&GITHUB), owned(&[("POST", "/github/webhook")]));
    assert!(routes(&WORKER).is_empty(), "the worker has no HTTP route");
    assert_eq!(resource("HttpApi")["Type"], "AWS::Serverless::HttpApi");
}

#[test]
fn the_worker_reads_the_queue_in_batches_and_reports_item_failures() {
    let sqs: Vec<_> = events(&WORKER)
        .into_iter()
        .filter(|e| e["Type"] == "SQS")
        .collect();
    assert_eq!(sqs.len(), 1, "one SQS event source");
    let p = &sqs[0]["Properties"];
    assert_eq!(p["Queue"], get_att("JobQueue", "Arn"));
    let batch = number(&p["BatchSize"]);
    assert!(
        (1.0..=10.0).contains(&batch),
        "batch of at most 10: {batch}"
    );
    assert!(
        list(&p["FunctionResponseTypes"]).contains(&&json!("ReportBatchItemFailures")),
        "ReportBatchItemFailures"
    );
    for f in [&DISCORD, &GITHUB] {
        assert!(
            events(f).iter().all(|e| e["Type"] != "SQS"),
            "{} never runs jobs",
            f.id
        );
    }
}

#[test]
fn timeouts_fit_the_work() {
    for f in FUNCTIONS {
        if let Some(limit) = f.answer_within {
            assert!(
                timeout(f) <= limit,
                "{}: a timeout past the caller's {limit} s only wastes time",
                f.id
            );
        }
    }
    let visibility = number(&props("JobQueue")["VisibilityTimeout"]);
    assert!(
        visibility >= 6.0 * timeout(&WORKER),
        "visibility timeout {visibility} s < 6 x the worker's timeout {} s",
        timeout(&WORKER)
    );
}

// ---------------------------------------------------------------------------------------
// State: one source of truth with `valine init`
// ---------------------------------------------------------------------------------------

fn key_schema(partition: &str, sort: &str) -> Value {
    json!([
        { "AttributeName": partition, "KeyType": "HASH" },
        { "AttributeName": sort, "KeyType": "RANGE" },
    ])
}

#[test]
fn the_table_is_the_one_valine_init_creates() {
    let table = resource("RunsTable");
    assert_eq!(table["Type"], "AWS::DynamoDB::Table");
    let p = &table["Properties"];
    assert_eq!(p["TableName"], sub("valine-orchestrator-runs-${Stage}"));
    assert_eq!(p["BillingMode"], TABLE_SCHEMA.billing_mode);
    assert_eq!(
        p["KeySchema"],
        key_schema(TABLE_SCHEMA.partition_key, TABLE_SCHEMA.sort_key)
    );

    // Exactly the key attributes, each with the store's type: DynamoDB refuses a
    // definition no key uses, and an index key the template forgot would be missing.
    let defined: BTreeMap<&str, &str> = list(&p["AttributeDefinitions"])
        .into_iter()
        .map(|d| {
            (
                d["AttributeName"].as_str().expect("AttributeName"),
                d["AttributeType"].as_str().expect("AttributeType"),
            )
        })
        .collect();
    let expected: BTreeMap<&str, &str> = TABLE_SCHEMA
        .key_attributes()
        .into_iter()
        .map(|name| (name, TABLE_SCHEMA.key_attribute_type))
        .collect();
    assert_eq!(defined, expected, "AttributeDefinitions");

    let indexes: BTreeMap<&str, &Value> = list(&p["GlobalSecondaryIndexes"])
        .into_iter()
        .map(|i| (i["IndexName"].as_str().expect("IndexName"), i))
        .collect();
    let names: BTreeSet<_> = TABLE_SCHEMA.indexes.iter().map(|i| i.name).collect();
    assert_eq!(
        indexes.keys().copied().collect::<BTreeSet<_>>(),
        names,
        "the indexes"
    );
    for index in TABLE_SCHEMA.indexes {
        let declared = indexes[index.name];
        assert_eq!(
            declared["KeySchema"],
            key_schema(index.partition_key, index.sort_key),
            "index {}",
            index.name
        );
        assert_eq!(
            declared["Projection"],
            json!({ "ProjectionType": index.projection }),
            "index {}",
            index.name
        );
    }
    assert!(
        p["LocalSecondaryIndexes"].is_null(),
        "the store uses no local index"
    );

    assert_eq!(
        p["TimeToLiveSpecification"],
        json!({ "AttributeName": TABLE_SCHEMA.ttl_attribute, "Enabled": true })
    );
    assert_eq!(
        p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
}

#[test]
fn the_table_outlives_the_stack_in_prod_only() {
    let kept_in_prod = json!({ "Fn::If": ["IsProd", "Retain", "Delete"] });
    assert_eq!(resource("RunsTable")["DeletionPolicy"], kept_in_prod);
    assert_eq!(resource("RunsTable")["UpdateReplacePolicy"], kept_in_prod);
    assert_eq!(
        props("RunsTable")["DeletionProtectionEnabled"],
        json!({ "Fn::If": ["IsProd", true, false] })
    );
    assert_eq!(
        template()["Conditions"]["IsProd"],
        json!({ "Fn::Equals": [reference("Stage"), "prod"] })
    );
    // An intrinsic in DeletionPolicy needs CloudFormation's language extensions.
    assert!(list(&template()["Transform"]).contains(&&json!("AWS::LanguageExtensions")));
}

// ---------------------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------------------

fn encrypted(queue: &str) -> bool {
    let p = props(queue);
    p["SqsManagedSseEnabled"] == true || !p["KmsMasterKeyId"].is_null()
}

#[test]
fn failed_jobs_reach_an_encrypted_dead_letter_queue_after_five_receives() {
    assert_eq!(resource("JobQueue")["Type"], "AWS::SQS::Queue");
    assert_eq!(resource("JobDeadLetterQueue")["Type"], "AWS::SQS::Queue");
    assert_eq!(
        props("JobQueue")["RedrivePolicy"],
        json!({
            "deadLetterTargetArn": get_att("JobDeadLetterQueue", "Arn"),
            "maxReceiveCount": 5,
        })
    );
    assert_eq!(
        number(&props("JobDeadLetterQueue")["MessageRetentionPeriod"]),
        14.0 * 24.0 * 3600.0,
        "the dead-letter queue keeps messages 14 days"
    );
    assert!(encrypted("JobQueue"), "the job queue is encrypted");
    assert!(encrypted("JobDeadLetterQueue"), "the dead-letter queue too");
}

// ---------------------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------------------

#[test]
fn each_function_logs_to_its_own_group_kept_30_days() {
    let groups = resources_of_type("AWS::Logs::LogGroup");
    assert_eq!(groups.len(), FUNCTIONS.len(), "one log group per function");
    for f in FUNCTIONS {
        let group = props(f.id)["LoggingConfig"]["LogGroup"]["Ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: LoggingConfig.LogGroup is a !Ref", f.id));
        let p = props(group);
        assert_eq!(resource(group)["Type"], "AWS::Logs::LogGroup");
        assert_eq!(p["LogGroupName"], sub(&format!("/aws/lambda/{}", f.name)));
        assert_eq!(number(&p["RetentionInDays"]), 30.0, "{group}");
    }
}

// ---------------------------------------------------------------------------------------
// Alarms
// ---------------------------------------------------------------------------------------

fn alarms() -> Vec<(&'static str, &'static Value)> {
    resources_of_type("AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|(id, r)| (id, &r["Properties"]))
        .collect()
}

fn dimension(name: &str, value: Value) -> Value {
    json!([{ "Name": name, "Value": value }])
}

/// The single-metric alarms on `metric` of function `f`.
fn metric_alarms(f: &Function, metric: &str) -> Vec<(&'static str, &'static Value)> {
    alarms()
        .into_iter()
        .filter(|(_, p)| {
            p["Namespace"] == "AWS/Lambda"
                && p["MetricName"] == metric
                && p["Dimensions"] == dimension("FunctionName", sub(f.name))
        })
        .collect()
}

fn one<T: std::fmt::Debug>(mut found: Vec<T>, what: &str) -> T {
    assert_eq!(found.len(), 1, "expected one {what}, found {found:?}");
    found.remove(0)
}

/// The metric-math alarm on `f`'s error rate: 100 × Errors / Invocations over 5 minutes.
fn error_rate_alarm(f: &Function) -> (&'static str, &'static Value) {
    let found = alarms()
        .into_iter()
        .filter(|(_, p)| {
            list(&p["Metrics"]).iter().any(|m| {
                m["MetricStat"]["Metric"]["MetricName"] == "Errors"
                    && m["MetricStat"]["Metric"]["Dimensions"]
                        == dimension("FunctionName", sub(f.name))
            })
        })
        .collect();
    let (id, p) = one(found, &format!("error-rate alarm on {}", f.id));
    let metrics = list(&p["Metrics"]);
    let stat_id = |name: &str| -> String {
        let m = metrics
            .iter()
            .find(|m| m["MetricStat"]["Metric"]["MetricName"] == name)
            .unwrap_or_else(|| panic!("{id}: no {name} metric"));
        assert_eq!(m["MetricStat"]["Metric"]["Namespace"], "AWS/Lambda", "{id}");
        assert_eq!(
            m["MetricStat"]["Metric"]["Dimensions"],
            dimension("FunctionName", sub(f.name)),
            "{id}"
        );
        assert_eq!(number(&m["MetricStat"]["Period"]), 300.0, "{id}: 5 minutes");
        assert_eq!(m["MetricStat"]["Stat"], "Sum", "{id}");
        assert_eq!(m["ReturnData"], false, "{id}");
        m["Id"].as_str().expect("Id").to_owned()
    };
    let (errors, invocations) = (stat_id("Errors"), stat_id("Invocations"));
    let returned: Vec<_> = metrics
        .iter()
        .filter(|m| m["ReturnData"] != false)
        .collect();
    let expression = one(returned, "returned expression")["Expression"]
        .as_str()
        .unwrap_or_else(|| panic!("{id}: the alarm watches an expression"));
    let compact: String = expression.split_whitespace().collect();
    assert!(
        compact.contains(&format!("100*{errors}/{invocations}")),
        "{id}: the expression is a percentage of invocations: {expression}"
    );
    assert!(
        compact.starts_with(&format!("IF({invocations}>0,")),
        "{id}: no division by zero when idle: {expression}"
    );
    assert_eq!(number(&p["Threshold"]), 5.0, "{id}: above 5 %");
    assert_eq!(p["ComparisonOperator"], "GreaterThanThreshold", "{id}");
    (id, p)
}

fn duration_alarm(f: &Function) -> (&'static str, &'static Value) {
    one(metric_alarms(f, "Duration"), "duration alarm")
}

#[test]
fn error_rate_above_5_percent_alarms_per_function() {
    for f in FUNCTIONS {
        let (id, p) = error_rate_alarm(f);
        assert_eq!(number(&p["EvaluationPeriods"]), 1.0, "{id}");
    }
}

#[test]
fn more_than_500_discord_invocations_an_hour_alarms() {
    let (id, p) = one(
        metric_alarms(&DISCORD, "Invocations"),
        "invocations alarm on the Discord function",
    );
    assert_eq!(p["Statistic"], "Sum", "{id}");
    assert_eq!(
        number(&p["Period"]) * number(&p["EvaluationPeriods"]),
        3600.0,
        "{id}: over one hour"
    );
    assert_eq!(number(&p["Threshold"]), 500.0, "{id}");
    assert_eq!(p["ComparisonOperator"], "GreaterThanThreshold", "{id}");
}

#[test]
fn a_duration_nearing_the_timeout_alarms() {
    for f in FUNCTIONS {
        let (id, p) = duration_alarm(f);
        let threshold_ms = number(&p["Threshold"]);
        let timeout_ms = timeout(f) * 1000.0;
        assert!(
            threshold_ms < timeout_ms && threshold_ms >= 0.5 * timeout_ms,
            "{id}: {threshold_ms} ms is not near the {timeout_ms} ms timeout"
        );
        assert!(
            matches!(p["Statistic"].as_str(), Some("Maximum"))
                || p["ExtendedStatistic"]
                    .as_str()
                    .is_some_and(|s| s.starts_with('p')),
            "{id}: the slowest invocations, not the average"
        );
        assert_eq!(p["ComparisonOperator"], "GreaterThanThreshold", "{id}");
    }
    // The runbook's figure: "> 30 seconds (approaching timeout)".
    assert_eq!(number(&duration_alarm(&WORKER).1["Threshold"]), 30_000.0);
}

#[test]
fn any_throttle_alarms() {
    for f in FUNCTIONS {
        let (id, p) = one(metric_alarms(f, "Throttles"), "throttles alarm");
        assert_eq!(p["Statistic"], "Sum", "{id}");
        assert_eq!(number(&p["Threshold"]), 0.0, "{id}");
        assert_eq!(p["ComparisonOperator"], "GreaterThanThreshold", "{id}");
    }
}

#[test]
fn any_message_in_the_dead_letter_queue_alarms() {
    let found = alarms()
        .into_iter()
        .filter(|(_, p)| {
            p["Namespace"] == "AWS/SQS"
                && p["Dimensions"]
                    == dimension("QueueName", get_att("JobDeadLetterQueue", "QueueName"))
        })
        .collect();
    let (id, p) = one(found, "dead-letter queue alarm");
    assert_eq!(
        p["MetricName"], "ApproximateNumberOfMessagesVisible",
        "{id}"
    );
    assert_eq!(number(&p["Threshold"]), 0.0, "{id}");
    assert_eq!(p["ComparisonOperator"], "GreaterThanThreshold", "{id}");
}

#[test]
fn every_alarm_notifies_the_optional_topic_and_stays_quiet_when_idle() {
    let to_topic = json!({
        "Fn::If": ["HasAlarmTopic", [reference("AlarmTopicArn")], reference("AWS::NoValue")]
    });
    assert_eq!(
        template()["Conditions"]["HasAlarmTopic"],
        json!({ "Fn::Not": [{ "Fn::Equals": [reference("AlarmTopicArn"), ""] }] })
    );
    assert_eq!(template()["Parameters"]["AlarmTopicArn"]["Default"], "");
    let all = alarms();
    assert_eq!(
        all.len(),
        11,
        "3 error rates, 3 durations, 3 throttles, invocations, DLQ"
    );
    for (id, p) in all {
        assert_eq!(p["AlarmActions"], to_topic, "{id}");
        assert_eq!(p["OKActions"], to_topic, "{id}");
        assert_eq!(p["TreatMissingData"], "notBreaching", "{id}");
        assert!(
            p["AlarmName"]["Fn::Sub"]
                .as_str()
                .is_some_and(|n| n.starts_with("valine-orchestrator-") && n.contains("${Stage}")),
            "{id}: named for the stage"
        );
    }
}

#[test]
fn a_bad_release_rolls_back_on_its_functions_alarms() {
    for f in FUNCTIONS {
        let preference = &props(f.id)["DeploymentPreference"];
        let kind = &preference["Type"]["Fn::If"];
        assert_eq!(kind[0], "IsProd", "{}", f.id);
        assert!(
            kind[1].as_str().is_some_and(|t| t.starts_with("Canary")),
            "{}: prod shifts traffic by canary, got {}",
            f.id,
            kind[1]
        );
        assert_eq!(kind[2], "AllAtOnce", "{}: dev all at once", f.id);
        let watched: BTreeSet<_> = list(&preference["Alarms"])
            .into_iter()
            .map(|a| a["Ref"].as_str().expect("alarms by !Ref"))
            .collect();
        let expected: BTreeSet<_> = [error_rate_alarm(f).0, duration_alarm(f).0].into();
        assert_eq!(watched, expected, "{}", f.id);
        assert!(
            preference["Enabled"].is_null() || preference["Enabled"] == true,
            "{}",
            f.id
        );
    }
}

// ---------------------------------------------------------------------------------------
// Permissions
// ---------------------------------------------------------------------------------------

/// Every IAM statement in the template, with where it stands.
fn statements() -> Vec<(String, &'static Value)> {
    let mut found = Vec::new();
    for (id, r) in resources() {
        let p = &r["Properties"];
        let mut documents = Vec::new();
        match r["Type"].as_str() {
            Some("AWS::IAM::ManagedPolicy") | Some("AWS::IAM::Policy") => {
                documents.push(&p["PolicyDocument"]);
            }
            Some("AWS::IAM::Role") => {
                documents.extend(
                    list(&p["Policies"])
                        .into_iter()
                        .map(|p| &p["PolicyDocument"]),
                );
            }
            Some("AWS::Serverless::Function") => {
                assert!(
                    p["Policies"].is_null(),
                    "{id}: permissions belong in its role, not SAM policies"
                );
            }
            _ => {}
        }
        for doc in documents {
            for s in list(&doc["Statement"]) {
                found.push((id.clone(), s));
            }
        }
    }
    found
}

fn actions(statement: &Value) -> Vec<&str> {
    list(&statement["Action"])
        .into_iter()
        .map(|a| a.as_str().expect("actions are strings"))
        .collect()
}

/// The statements a function's role grants: its inline policies and managed ones.
fn function_statements(f: &Function) -> Vec<&'static Value> {
    let role = props(f.id)["Role"]["Fn::GetAtt"][0]
        .as_str()
        .unwrap_or_else(|| panic!("{}: Role is !GetAtt <role>.Arn", f.id));
    let role_props = props(role);
    let trust = list(&role_props["AssumeRolePolicyDocument"]["Statement"]);
    assert_eq!(
        trust.iter().map(|s| &s["Principal"]).collect::<Vec<_>>(),
        [&json!({ "Service": "lambda.amazonaws.com" })],
        "{role}: only Lambda assumes it"
    );
    let managed: Vec<&str> = list(&role_props["ManagedPolicyArns"])
        .into_iter()
        .map(|arn| {
            arn["Ref"]
                .as_str()
                .unwrap_or_else(|| panic!("{role}: only this template's policies, got {arn}"))
        })
        .collect();
    statements()
        .into_iter()
        .filter(|(id, _)| id == role || managed.contains(&id.as_str()))
        .map(|(_, s)| s)
        .collect()
}

fn granted(f: &Function, prefix: &str) -> BTreeSet<String> {
    function_statements(f)
        .into_iter()
        .flat_map(actions)
        .filter(|a| a.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

#[test]
fn no_statement_grants_the_table_queue_or_parameters_on_any_resource() {
    let all = statements();
    assert!(!all.is_empty());
    for (id, s) in &all {
        assert_eq!(s["Effect"], "Allow", "{id}");
        assert!(
            s["NotResource"].is_null() && s["NotAction"].is_null(),
            "{id}"
        );
        for action in actions(s) {
            assert!(
                !action.contains('*'),
                "{id}: wildcard action {action}: name each one"
            );
        }
        let resources = list(&s["Resource"]);
        if resources.contains(&&json!("*")) {
            // X-Ray's write actions take no resource: the only "*" allowed.
            assert!(
                actions(s).iter().all(|a| a.starts_with("xray:")),
                "{id}: resource \"*\" for {:?}",
                actions(s)
            );
        }
    }
}

#[test]
fn each_function_may_touch_only_its_table_queue_parameters_and_log_group() {
    let table = [get_att("RunsTable", "Arn"), sub("${RunsTable.Arn}/index/*")];
    let parameters = sub(
        "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/valine/${Stage}/*",
    );
    for f in FUNCTIONS {
        let statements = function_statements(f);
        for s in &statements {
            let acts = actions(s);
            let resources: Vec<&Value> = list(&s["Resource"]);
            let service = |prefix: &str| acts.iter().any(|a| a.starts_with(prefix));
            if service("dynamodb:") {
                assert_eq!(resources, table.iter().collect::<Vec<_>>(), "{}", f.id);
            }
            if service("sqs:") {
                assert_eq!(resources, [&get_att("JobQueue", "Arn")], "{}", f.id);
            }
            if service("ssm:") {
                assert_eq!(acts, ["ssm:GetParameters"], "{}", f.id);
                assert_eq!(resources, [&parameters], "{}", f.id);
            }
            if service("kms:") {
                assert_eq!(acts, ["kms:Decrypt"], "{}", f.id);
                assert_eq!(
                    s["Condition"]["StringEquals"]["kms:ViaService"],
                    sub("ssm.${AWS::Region}.amazonaws.com"),
                    "{}: decrypt only through SSM",
                    f.id
                );
            }
            if service("logs:") {
                let group = props(f.id)["LoggingConfig"]["LogGroup"]["Ref"]
                    .as_str()
                    .expect("log group");
                assert_eq!(resources, [&get_att(group, "Arn")], "{}", f.id);
            }
        }
        assert_eq!(granted(f, "ssm:"), ["ssm:GetParameters".to_owned()].into());
        assert_eq!(granted(f, "kms:"), ["kms:Decrypt".to_owned()].into());
        let dynamodb = granted(f, "dynamodb:");
        for needed in ["GetItem", "Query", "PutItem", "UpdateItem", "DeleteItem"] {
            assert!(dynamodb.contains(&format!("dynamodb:{needed}")), "{}", f.id);
        }
        for never in ["Scan", "DeleteTable", "UpdateTable", "CreateTable"] {
            assert!(!dynamodb.contains(&format!("dynamodb:{never}")), "{}", f.id);
        }
        assert!(granted(f, "xray:").contains("xray:PutTraceSegments"));
        let allowed: BTreeSet<&str> =
            ["dynamodb:", "sqs:", "ssm:", "kms:", "logs:", "xray:"].into();
        for s in &statements {
            for a in actions(s) {
                let service = &a[..=a.find(':').expect("service:action")];
                assert!(allowed.contains(service), "{}: {a}", f.id);
            }
        }
    }

    let send = BTreeSet::from(["sqs:SendMessage".to_owned()]);
    assert_eq!(granted(&DISCORD, "sqs:"), send, "Discord only enqueues");
    assert_eq!(granted(&GITHUB, "sqs:"), send, "GitHub only enqueues");
    let worker: BTreeSet<String> = [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:SendMessage",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(
        granted(&WORKER, "sqs:"),
        worker,
        "the worker consumes, and re-enqueues waits and follow-ups"
    );
}

// ---------------------------------------------------------------------------------------
// Parameters and the functions' environment
// ---------------------------------------------------------------------------------------

fn parameters() -> &'static Map<String, Value> {
    template()["Parameters"]
        .as_object()
        .expect("the template has Parameters")
}

/// Which variable each parameter becomes.
const PARAMETER_VARIABLES: &[(&str, &str)] = &[
    ("Stage", "STAGE"),
    ("DiscordPublicKey", "DISCORD_PUBLIC_KEY"),
    ("DiscordApplicationId", "DISCORD_APPLICATION_ID"),
    ("DiscordGuildId", "DISCORD_GUILD_ID"),
    ("DiscordStatusChannelId", "DISCORD_STATUS_CHANNEL_ID"),
    ("GitHubRepo", "GITHUB_REPO"),
    ("DeployWorkflow", "DEPLOY_WORKFLOW"),
    ("DiagnoseWorkflow", "DIAGNOSE_WORKFLOW"),
    ("DeployBranch", "DEPLOY_BRANCH"),
    ("FrontendBaseUrl", "FRONTEND_BASE_URL"),
    ("ViteApiBase", "VITE_API_BASE"),
    ("AdminUserIds", "ADMIN_USER_IDS"),
    ("AdminRoleIds", "ADMIN_ROLE_IDS"),
    ("DeployerUserIds", "DEPLOYER_USER_IDS"),
    ("DeployerRoleIds", "DEPLOYER_ROLE_IDS"),
    ("BlockedUserIds", "BLOCKED_USER_IDS"),
    ("AllowedDomains", "ALLOWED_DOMAINS"),
    ("DryRun", "DRY_RUN"),
    ("AutoVerify", "AUTO_VERIFY"),
    ("GitHubSyncSettings", "GITHUB_SYNC_SETTINGS"),
    ("RateLimitPerMinute", "RATE_LIMIT_PER_MINUTE"),
    ("SecretsRevision", "VALINE_SECRETS_REVISION"),
];

/// The secrets, each an SSM parameter under `/valine/{Stage}/`.
const SECRETS: &[(&str, &str)] = &[
    ("DISCORD_BOT_TOKEN", "discord-bot-token"),
    ("GITHUB_TOKEN", "github-token"),
    ("GITHUB_WEBHOOK_SECRET", "github-webhook-secret"),
];

/// A valid value for each required parameter.
fn good_values() -> HashMap<&'static str, &'static str> {
    HashMap::from([
        ("Stage", "dev"),
        (
            "DiscordPublicKey",
            "a8c1f2e3d4b5a6978877665544332211ffeeddccbbaa99887766554433221100",
        ),
        ("DiscordApplicationId", "1234567890123456789"),
        ("GitHubRepo", "octo-org/octo-repo"),
    ])
}

/// A CloudFormation `AllowedPattern` as Rust's regex crate reads it: the whole value
/// must match (Java's `matches`). The patterns use no look-around, which both accept.
fn allowed_pattern(parameter: &str) -> Option<regex::Regex> {
    parameters()[parameter]["AllowedPattern"]
        .as_str()
        .map(|p| regex::Regex::new(&format!("^(?:{p})$")).expect("a valid pattern"))
}

/// Whether CloudFormation would accept `value` for `parameter` (pattern, allowed
/// values, lengths, bounds).
fn accepted(parameter: &str, value: &str) -> bool {
    let p = &parameters()[parameter];
    if let Some(pattern) = allowed_pattern(parameter)
        && !pattern.is_match(value)
    {
        return false;
    }
    if let Some(values) = p["AllowedValues"].as_array()
        && !values.iter().any(|v| v == value)
    {
        return false;
    }
    let length = value.chars().count() as f64;
    if !p["MinLength"].is_null() && length < number(&p["MinLength"]) {
        return false;
    }
    if !p["MaxLength"].is_null() && length > number(&p["MaxLength"]) {
        return false;
    }
    if p["Type"] == "Number" {
        let Ok(n) = value.parse::<f64>() else {
            return false;
        };
        if (!p["MinValue"].is_null() && n < number(&p["MinValue"]))
            || (!p["MaxValue"].is_null() && n > number(&p["MaxValue"]))
        {
            return false;
        }
    }
    true
}

#[test]
fn every_parameter_explains_its_constraint_and_required_ones_refuse_empty() {
    for (name, p) in parameters() {
        assert!(
            p["ConstraintDescription"]
                .as_str()
                .is_some_and(|d| d.contains(name.as_str())),
            "{name}: a ConstraintDescription naming the parameter, so the failure says which"
        );
        assert!(
            p["Description"].as_str().is_some_and(|d| !d.is_empty()),
            "{name}: a Description"
        );
        assert!(p["NoEcho"].is_null(), "{name}: no secret is a parameter");
        match p.get("Default") {
            None => assert!(
                !accepted(name, ""),
                "{name} has no default, so an empty value must fail the deploy"
            ),
            Some(default) => {
                let default = default
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| default.to_string());
                assert!(accepted(name, &default), "{name}: its default {default:?}");
            }
        }
    }
    let required: BTreeSet<&str> = parameters()
        .iter()
        .filter(|(_, p)| p.get("Default").is_none())
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(
        required,
        good_values().keys().copied().collect(),
        "the required parameters"
    );
}

#[test]
fn no_secret_is_a_parameter_and_every_secret_comes_from_ssm() {
    // SecretsRevision is a counter an operator bumps after a rotation, not a secret.
    for name in parameters().keys().filter(|n| *n != "SecretsRevision") {
        let lower = name.to_ascii_lowercase();
        for word in ["token", "secret", "password", "privatekey"] {
            assert!(!lower.contains(word), "{name} looks like a secret");
        }
    }
    let env = environment();
    for (var, parameter) in SECRETS {
        assert_eq!(
            env[*var],
            sub(&format!("ssm:/valine/${{Stage}}/{parameter}")),
            "{var}"
        );
    }
    // Every ssm: value lies where the functions may read.
    for (var, value) in env {
        if let Some(s) = value["Fn::Sub"].as_str().filter(|s| s.starts_with("ssm:")) {
            assert!(s.starts_with("ssm:/valine/${Stage}/"), "{var}: {s}");
        }
    }
}

#[test]
fn each_setting_reaches_the_functions_as_its_variable() {
    let env = environment();
    for (parameter, var) in PARAMETER_VARIABLES {
        assert_eq!(env[*var], reference(parameter), "{var}");
    }
    let mapped: BTreeSet<&str> = PARAMETER_VARIABLES.iter().map(|(p, _)| *p).collect();
    for name in parameters().keys() {
        assert!(
            mapped.contains(name.as_str()) || name == "AlarmTopicArn",
            "{name} is not passed to the functions"
        );
    }
    assert_eq!(env["VALINE_STORE"], sub("dynamodb:${RunsTable}"));
    assert_eq!(env["VALINE_QUEUE_URL"], reference("JobQueue"));
}

/// Resolves the intrinsics the environment uses, for `values` as the parameters.
struct Resolver<'a> {
    values: &'a HashMap<&'a str, String>,
}

impl Resolver<'_> {
    fn resolve(&self, value: &Value) -> Option<String> {
        if let Some(s) = value.as_str() {
            return Some(s.to_owned());
        }
        if value.is_number() {
            return Some(value.to_string());
        }
        if let Some(id) = value["Ref"].as_str() {
            return Some(self.reference(id));
        }
        if let Some(s) = value["Fn::Sub"].as_str() {
            let mut out = String::new();
            let mut rest = s;
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let end = rest[start..].find('}').expect("closing }") + start;
                out.push_str(&self.reference(&rest[start + 2..end]));
                rest = &rest[end + 1..];
            }
            out.push_str(rest);
            return Some(out);
        }
        panic!("an intrinsic this test does not resolve: {value}")
    }

    fn reference(&self, id: &str) -> String {
        if let Some(v) = self.values.get(id) {
            return v.clone();
        }
        match id {
            "AWS::Region" => "eu-west-1".into(),
            "AWS::AccountId" => "123456789012".into(),
            "AWS::Partition" => "aws".into(),
            "AWS::URLSuffix" => "amazonaws.com".into(),
            // What !Ref returns for these resources: the table's name, the queue's URL.
            "RunsTable" => self
                .resolve(&props("RunsTable")["TableName"])
                .expect("table name"),
            "JobQueue" => format!(
                "https://sqs.eu-west-1.amazonaws.com/123456789012/{}",
                self.resolve(&props("JobQueue")["QueueName"])
                    .expect("queue name")
            ),
            other => match parameters().get(other) {
                Some(p) => self.resolve(&p["Default"]).expect("a default"),
                None => panic!("!Ref {other}: not a parameter or known resource"),
            },
        }
    }
}

/// The functions' environment for these parameter values, each `ssm:` value replaced by
/// a stand-in secret (what `Config::load` would have read from SSM).
fn resolved_environment(values: &HashMap<&str, String>) -> HashMap<String, String> {
    let resolver = Resolver { values };
    environment()
        .iter()
        .map(|(var, value)| {
            let mut v = resolver.resolve(value).expect("a value");
            if v.starts_with("ssm:") {
                v = format!("stand-in-for-{var}");
            }
            (var.clone(), v)
        })
        .collect()
}

fn good_parameters() -> HashMap<&'static str, String> {
    good_values()
        .into_iter()
        .map(|(k, v)| (k, v.to_owned()))
        .collect()
}

#[test]
fn valine_accepts_the_environment_the_template_gives() {
    for stage in ["dev", "prod"] {
        let mut values = good_parameters();
        values.insert("Stage", stage.to_owned());
        let config = Config::from_vars(resolved_environment(&values))
            .unwrap_or_else(|e| panic!("stage {stage}: {e}"));
        assert_eq!(config.stage, stage);
        assert_eq!(
            config.store,
            StoreLocation::DynamoDb(format!("valine-orchestrator-runs-{stage}"))
        );
        assert!(
            config
                .missing()
                .iter()
                .all(|var| ["FRONTEND_BASE_URL", "VITE_API_BASE"].contains(var)),
            "stage {stage}: only the optional targets may be missing: {:?}",
            config.missing()
        );
        assert!(config.github_repo.is_some() && config.discord_bot_token.is_some());
    }
}

/// Values tried on each parameter: whatever its constraint lets through, Valine must
/// accept at start-up, or a deploy would succeed into functions that cannot start.
const TRIED_VALUES: &[(&str, &[&str])] = &[
    (
        "DiscordPublicKey",
        &[
            "",
            "abc",
            "A8C1F2E3D4B5A6978877665544332211FFEEDDCCBBAA99887766554433221100",
            "g8c1f2e3d4b5a6978877665544332211ffeeddccbbaa99887766554433221100",
        ],
    ),
    (
        "DiscordApplicationId",
        &["", "42", "123456789012345678901", "12a", " 42"],
    ),
    ("DiscordGuildId", &["", "42", "x", "42,43"]),
    ("DiscordStatusChannelId", &["", "42", "-1"]),
    (
        "GitHubRepo",
        &[
            "",
            "octo",
            "octo/",
            "/repo",
            "octo-org/octo.repo",
            "octo/.",
            "octo/..",
            "octo/repo/extra",
            "octo org/repo",
            "octo/repo_1",
        ],
    ),
    (
        "DeployWorkflow",
        &["", " ", "deploy.yml", "123", "Client Deploy", " deploy.yml"],
    ),
    ("DiagnoseWorkflow", &["", "diagnose.yml", "Diagnose it"]),
    (
        "DeployBranch",
        &["", "main", "release/1.2", "a b", "feat~1"],
    ),
    (
        "FrontendBaseUrl",
        &[
            "",
            "https://example.com",
            "http://example.com:8080/app",
            "example.com",
            "ftp://example.com",
            "https://",
            "https://exa mple.com",
        ],
    ),
    (
        "ViteApiBase",
        &["", "https://api.example.com/v1", "api.example.com"],
    ),
    (
        "AdminUserIds",
        &["", "42", "42,43", "42, 43", "42,", "abc", ",42"],
    ),
    ("AdminRoleIds", &["", "42", "4 2"]),
    ("DeployerUserIds", &["", "42,43", "x"]),
    ("DeployerRoleIds", &["", "42"]),
    ("BlockedUserIds", &["", "42"]),
    (
        "AllowedDomains",
        &[
            "",
            "example.com",
            "*.example.com",
            "example.com, *.example.org",
            "*",
            "*example.com",
            "https://example.com",
            "a@b.com",
        ],
    ),
    ("DryRun", &["true", "false", "", "yes"]),
    ("AutoVerify", &["true", "false", ""]),
    ("GitHubSyncSettings", &["true", "false", "maybe"]),
    ("RateLimitPerMinute", &["10", "1", "0", "1001", "-5", "ten"]),
    ("SecretsRevision", &["1", "2026-11-30", "", "a b"]),
    ("Stage", &["dev", "prod", "", "staging"]),
];

#[test]
fn what_a_parameter_constraint_lets_through_valine_accepts() {
    let tried: BTreeSet<&str> = TRIED_VALUES.iter().map(|(p, _)| *p).collect();
    let mapped: BTreeSet<&str> = PARAMETER_VARIABLES.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        tried, mapped,
        "every parameter that becomes a variable is tried"
    );
    let mut refused = 0;
    for (parameter, values) in TRIED_VALUES {
        for value in *values {
            if !accepted(parameter, value) {
                refused += 1;
                continue;
            }
            let mut values = good_parameters();
            values.insert(parameter, (*value).to_owned());
            if let Err(e) = Config::from_vars(resolved_environment(&values)) {
                panic!(
                    "{parameter}={value:?} passes the template's constraint but not Valine: {e}"
                );
            }
        }
    }
    assert!(
        refused > 30,
        "the tried values include bad ones ({refused})"
    );
}

#[test]
fn an_empty_or_malformed_required_value_fails_before_anything_is_created() {
    for (parameter, good) in good_values() {
        assert!(accepted(parameter, good), "{parameter}={good:?}");
        assert!(!accepted(parameter, ""), "{parameter} empty");
        assert!(!accepted(parameter, " "), "{parameter} blank");
    }
    assert!(!accepted("DiscordPublicKey", &"a".repeat(63)));
    assert!(!accepted("GitHubRepo", "octo-repo"));
    assert!(!accepted(
        "AlarmTopicArn",
        "arn:aws:sqs:eu-west-1:123456789012:q"
    ));
    assert!(accepted(
        "AlarmTopicArn",
        "arn:aws:sns:eu-west-1:123456789012:valine-alarms"
    ));
}

// ---------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------

#[test]
fn outputs_give_the_urls_to_paste_and_the_names_to_use() {
    let outputs = &template()["Outputs"];
    let api = "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}";
    assert_eq!(
        outputs["DiscordInteractionsUrl"]["Value"],
        sub(&format!("{api}/discord/interactions"))
    );
    assert_eq!(
        outputs["GitHubWebhookUrl"]["Value"],
        sub(&format!("{api}/github/webhook"))
    );
    assert_eq!(outputs["RunsTableName"]["Value"], reference("RunsTable"));
    assert_eq!(outputs["JobQueueUrl"]["Value"], reference("JobQueue"));
    for (name, output) in outputs.as_object().expect("Outputs") {
        assert!(
            output["Description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{name}: a Description"
        );
    }
}

// ---------------------------------------------------------------------------------------
// samconfig.toml
// ---------------------------------------------------------------------------------------

#[test]
fn samconfig_has_dev_and_prod_for_this_template() {
    let text = std::fs::read_to_string(deploy_dir().join("samconfig.toml"))
        .expect("deploy/samconfig.toml");
    let config: toml::Table = text.parse().expect("samconfig.toml is TOML");
    let template_file = config["default"]["global"]["parameters"]["template_file"]
        .as_str()
        .expect("default.global.parameters.template_file");
    assert!(deploy_dir().join(template_file).is_file());

    for stage in ["dev", "prod"] {
        let deploy = &config[stage]["deploy"]["parameters"];
        assert_eq!(
            deploy["stack_name"].as_str(),
            Some(format!("valine-orchestrator-{stage}").as_str())
        );
        let capabilities = deploy["capabilities"].as_str().expect("capabilities");
        for needed in ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"] {
            assert!(
                capabilities.split_whitespace().any(|c| c == needed),
                "{stage}: {needed}"
            );
        }
        let overrides: BTreeMap<&str, &str> = deploy["parameter_overrides"]
            .as_str()
            .expect("parameter_overrides")
            .split_whitespace()
            .map(|pair| pair.split_once('=').expect("Name=value"))
            .collect();
        assert_eq!(overrides.get("Stage"), Some(&stage), "{stage}");
        for (name, value) in &overrides {
            assert!(
                parameters().contains_key(*name),
                "{stage}: unknown parameter {name}"
            );
            assert!(
                accepted(name, value.trim_matches('"')),
                "{stage}: {name}={value}"
            );
        }
        assert!(
            !text.to_ascii_lowercase().contains("token="),
            "no secret in samconfig.toml"
        );
    }
    assert_eq!(
        config["prod"]["deploy"]["parameters"]["confirm_changeset"].as_bool(),
        Some(true),
        "prod shows its change set first"
    );
}
