//! Structured logging: one flat JSON object per line, or one readable line of text for
//! people at a terminal (see `docs/design.md#logs`).
//!
//! [`LogLayer`] is a [`tracing_subscriber::Layer`] that turns every event into a single
//! line such as
//!
//! ```text
//! {"timestamp":"2026-11-28T04:43:18.123Z","level":"INFO","message":"command done","target":"valine::commands","stage":"prod","trace_id":"…","command":"deploy-client","duration_ms":812,"outcome":"ok"}
//! ```
//!
//! Everything sits at the top level because CloudWatch Logs Insights queries in the
//! runbook (`filter level = "ERROR"`, `stats avg(duration_ms) by command`,
//! `{ $.trace_id = "…" }`) address fields by their bare names. The fields of every
//! enclosing span are flattened into the line (outermost first; inner spans, then the
//! event, override), so a `trace_id` recorded once on the command span reaches every
//! line written inside it. The one exception to flatness is the error object: fields
//! named `error.type` and `error.message` become `"error": {"type": …, "message": …}`.
//!
//! [`LogFormat::Text`] writes the same fields, collected and redacted the same way, as
//!
//! ```text
//! 2026-11-28T04:43:18.123Z  INFO command done  trace_id=… command=deploy-client duration_ms=812 outcome=ok
//! ```
//!
//! (timestamp, level, message, then `key=value`; the error object as `error.type=…`).
//! [`init`] picks it only for a terminal, and never under Lambda, where CloudWatch
//! queries need the JSON.
//!
//! Redaction happens here, at the last point before bytes leave the process, so that a
//! secret quoted by some library error (an HTTP client printing a URL, say) cannot slip
//! through a call site that forgot to scrub: every string is passed through
//! [`crate::secret::scrub`] and webhook URLs through
//! [`crate::secret::redact_webhook_path`], and token-like field names are never written.
//!
//! Under Lambda (`AWS_LAMBDA_FUNCTION_NAME` set, or [`LogLayer::with_emf`]) every
//! completion line (one with `duration_ms` and `outcome`) is also a CloudWatch Embedded
//! Metric Format record, so CloudWatch turns the logs into metrics without an agent or
//! API calls: `_aws` names the namespace `Valine`, the dimensions (`stage` with
//! `command`, `event` for a webhook, or `job`) and the metrics `duration_ms`
//! (Milliseconds) and `error` (Count, 0 or 1), whose values sit at the top level. EMF
//! needs `error` to be that number, so on such a line the error object, if any, is
//! written as `error_detail`.
//!
//! [`with_xray_trace_id`] scopes an invocation's X-Ray trace id: every line written
//! from inside the scope carries `xray_trace_id`. It is a Tokio task-local, so it
//! covers the future it wraps (and everything that future awaits) but not tasks that
//! future spawns; the Lambda edge wraps each invocation's handling in it.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Write};

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Number, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::secret::{redact_webhook_path, scrub};

tokio::task_local! {
    /// The X-Ray trace of the invocation being handled, for [`with_xray_trace_id`].
    static XRAY_TRACE_ID: XRay;
}

/// Runs `work` with the X-Ray trace id of `header` (a `Lambda-Runtime-Trace-Id` or
/// `_X_AMZN_TRACE_ID` value) set: every line it logs carries `xray_trace_id`. A header
/// without a readable `Root=` runs `work` as is.
pub async fn with_xray_trace_id<F: std::future::Future>(header: &str, work: F) -> F::Output {
    match xray_root(header) {
        Some(root) => XRAY_TRACE_ID.scope(XRay::new(root, header), work).await,
        None => work.await,
    }
}

/// [`with_xray_trace_id`] for synchronous code.
pub fn with_xray_trace_id_sync<R>(header: &str, work: impl FnOnce() -> R) -> R {
    match xray_root(header) {
        Some(root) => XRAY_TRACE_ID.sync_scope(XRay::new(root, header), work),
        None => work(),
    }
}

/// The trace a piece of work runs in: the root id its log lines carry, and the whole
/// header passed on to the work it starts elsewhere (an SQS message's `AWSTraceHeader`).
#[derive(Debug, Clone)]
struct XRay {
    root: String,
    header: String,
}

impl XRay {
    fn new(root: &str, header: &str) -> XRay {
        XRay {
            root: root.to_owned(),
            header: header.trim().to_owned(),
        }
    }
}

/// The X-Ray trace header of the work the caller runs in (inside
/// [`with_xray_trace_id`]), to pass on with work it starts elsewhere.
pub fn current_xray_header() -> Option<String> {
    XRAY_TRACE_ID.try_with(|xray| xray.header.clone()).ok()
}

/// The bare root trace id (`1-5759e988-bd862e3fe1be46a994272793`) from the `Root=` part
/// of an X-Ray trace header (`Root=…;Parent=…;Sampled=1`, parts in any order). Only the
/// documented shape is accepted, since the value is written into every log line.
pub fn xray_root(header: &str) -> Option<&str> {
    let root = header
        .split(';')
        .map(str::trim)
        .find_map(|part| part.strip_prefix("Root="))?;
    let mut pieces = root.split('-');
    let shaped = pieces.next() == Some("1")
        && pieces.next().is_some_and(|t| t.len() == 8 && is_hex(t))
        && pieces.next().is_some_and(|u| u.len() == 24 && is_hex(u))
        && pieces.next().is_none();
    shaped.then_some(root)
}

fn is_hex(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The CloudWatch namespace of the EMF metrics.
const EMF_NAMESPACE: &str = "Valine";

/// The field that names what a completion line measured, in order of precedence: a
/// deferred command's job line has `command` and is counted as the command.
const EMF_DIMENSIONS: [&str; 3] = ["command", "event", "job"];

/// What a redacted value is replaced with (the same marker [`crate::secret`] uses).
const REDACTED: &str = "[REDACTED]";

/// Keys the layer writes itself; a span or event field with one of these names is
/// written as `field.<name>` instead, because a JSON object with a duplicate key is
/// read differently by different parsers (CloudWatch keeps the last one).
const RESERVED: [&str; 5] = ["timestamp", "level", "message", "target", "stage"];

/// How log lines are written (`VALINE_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One flat JSON object per line: what CloudWatch and log shippers read.
    Json,
    /// One readable line per event, for people at a terminal.
    Text,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(LogFormat::Json),
            "text" => Ok(LogFormat::Text),
            _ => Err(format!("expected json or text, got {value:?}")),
        }
    }
}

/// Which edge of the binary is logging: it decides where lines go, the default filter
/// and whether text is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogEdge {
    /// `valine serve`: stdout, `info`.
    Serve,
    /// `valine lambda`: stdout, `info`, always JSON (CloudWatch queries need it).
    Lambda,
    /// Every other sub-command: stderr (stdout is their output), `warn`, so that log
    /// lines do not interleave with what the command prints.
    Cli,
}

impl LogEdge {
    /// The filter used when `VALINE_LOG` is unset or does not parse.
    pub fn default_filter(self) -> &'static str {
        match self {
            LogEdge::Serve | LogEdge::Lambda => "info",
            LogEdge::Cli => "warn",
        }
    }

    fn to_stdout(self) -> bool {
        matches!(self, LogEdge::Serve | LogEdge::Lambda)
    }
}

/// What the configuration says about logging, for [`init`].
#[derive(Debug, Clone, Copy)]
pub struct LogSettings<'a> {
    /// `VALINE_LOG`, when set.
    pub filter: Option<&'a str>,
    /// `VALINE_LOG_FORMAT`, when set.
    pub format: Option<LogFormat>,
    pub stage: &'a str,
}

/// The format to write in: the one asked for, else text on a terminal and JSON
/// elsewhere (a file, a pipe, a log shipper). Under Lambda it is always JSON; the
/// second value says a requested `text` was overruled, which deserves a warning.
pub fn choose_format(
    requested: Option<LogFormat>,
    terminal: bool,
    lambda: bool,
) -> (LogFormat, bool) {
    match (requested, lambda) {
        (Some(LogFormat::Text), true) => (LogFormat::Json, true),
        (_, true) => (LogFormat::Json, false),
        (Some(format), false) => (format, false),
        (None, false) if terminal => (LogFormat::Text, false),
        (None, false) => (LogFormat::Json, false),
    }
}

/// Installs the global subscriber: an [`EnvFilter`] built from `VALINE_LOG` (`RUST_LOG`
/// syntax; the edge's default when unset) in front of a [`LogLayer`] writing where the
/// edge writes, in the format [`choose_format`] picks. `secrets` are scrubbed from
/// every line.
///
/// An invalid filter falls back to the default and a WARN line says so, because
/// refusing to start over a logging typo would be worse than logging a bit too much. If
/// a global subscriber is already installed (a second call, or a test harness) this
/// does nothing: the first subscriber stays in charge.
pub fn init(settings: LogSettings<'_>, secrets: Vec<String>, edge: LogEdge) {
    use std::io::IsTerminal;
    let default = edge.default_filter();
    let filter = settings.filter.unwrap_or(default);
    let (env_filter, rejected) = parse_filter(filter, default);
    let (writer, terminal) = if edge.to_stdout() {
        (BoxMakeWriter::new(io::stdout), io::stdout().is_terminal())
    } else {
        (BoxMakeWriter::new(io::stderr), io::stderr().is_terminal())
    };
    // Lambda sets this in every function's environment; CloudWatch reads EMF from logs.
    let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let (format, overruled) = choose_format(
        settings.format,
        terminal,
        in_lambda || edge == LogEdge::Lambda,
    );
    let installed = tracing_subscriber::registry()
        .with(env_filter)
        .with(
            layer(settings.stage, secrets, writer)
                .with_emf(in_lambda)
                .with_format(format),
        )
        .try_init()
        .is_ok();
    // Only warn through our own subscriber: when another one is in charge, the filter
    // we rejected is not the one in use, and the warning would be misleading.
    if !installed {
        return;
    }
    if let Some(error) = rejected {
        tracing::warn!(
            filter,
            error.type = "invalid_log_filter",
            error.message = %error,
            "invalid log filter (VALINE_LOG); falling back to {default}"
        );
    }
    if overruled {
        tracing::warn!(
            variable = "VALINE_LOG_FORMAT",
            "VALINE_LOG_FORMAT=text is ignored under Lambda: CloudWatch queries and metrics read JSON lines"
        );
    }
}

/// Builds a JSON [`LogLayer`] writing to `writer`, for callers that assemble their own
/// subscriber (tests capturing output, the Lambda entry point).
///
/// `secrets` are the values that must never appear in a line (the configured tokens and
/// webhook secret); empty and very short ones are ignored by [`scrub`], since replacing
/// them would mangle ordinary text.
pub fn layer<W>(stage: &str, secrets: Vec<String>, writer: W) -> LogLayer<W>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    LogLayer {
        stage: stage.to_owned(),
        redactor: Redactor::new(secrets),
        make_writer: writer,
        emf: false,
        format: LogFormat::Json,
    }
}

/// Parses a `RUST_LOG`-style filter; on failure returns the `default` filter together
/// with the parse error so that the caller can report it once logging works.
fn parse_filter(filter: &str, default: &str) -> (EnvFilter, Option<String>) {
    let filter = filter.trim();
    if filter.is_empty() {
        // An empty EnvFilter enables nothing but errors; an unset-but-empty VALINE_LOG
        // means "default", not "almost silent".
        return (EnvFilter::new(default), None);
    }
    match EnvFilter::try_new(filter) {
        Ok(parsed) => (parsed, None),
        Err(error) => (EnvFilter::new(default), Some(error.to_string())),
    }
}

/// A [`Layer`] writing one flat, redacted JSON object (or line of text) per event; see
/// the module docs.
pub struct LogLayer<W> {
    stage: String,
    redactor: Redactor,
    make_writer: W,
    /// Completion lines are also CloudWatch EMF records (JSON only).
    emf: bool,
    format: LogFormat,
}

impl<W> LogLayer<W> {
    /// Makes every completion line also a CloudWatch Embedded Metric Format record.
    pub fn with_emf(mut self, emf: bool) -> Self {
        self.emf = emf;
        self
    }

    /// Writes lines in `format`; EMF records exist only in JSON.
    pub fn with_format(mut self, format: LogFormat) -> Self {
        self.format = format;
        self
    }
}

impl<W> fmt::Debug for LogLayer<W> {
    // Written by hand so that `{:?}` can never print the secrets the layer holds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogLayer")
            .field("stage", &self.stage)
            .field("emf", &self.emf)
            .field("format", &self.format)
            .field(
                "secrets",
                &format_args!("{} redacted", self.redactor.secrets.len()),
            )
            .finish_non_exhaustive()
    }
}

impl<S, W> Layer<S> for LogLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        // Two LogLayers on one registry (stdout plus a capture, say) share the span's
        // extensions; `insert` panics on a duplicate type, and the raw values are the
        // same for both, so the first layer's copy serves both.
        if extensions.get_mut::<SpanFields>().is_none() {
            let mut fields = FieldSet::default();
            attrs.record(&mut fields);
            extensions.insert(SpanFields(fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        match extensions.get_mut::<SpanFields>() {
            Some(SpanFields(fields)) => values.record(fields),
            None => {
                let mut fields = FieldSet::default();
                values.record(&mut fields);
                extensions.insert(SpanFields(fields));
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = FieldSet::default();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(span_fields)) = span.extensions().get::<SpanFields>() {
                    fields.merge(span_fields);
                }
            }
        }
        let mut own = FieldSet::default();
        event.record(&mut own);
        // The event's `message` is the line's message; a span field of that name is
        // data like any other and gets renamed below with the other reserved names.
        let message = own.take("message");
        fields.merge(&own);
        if let Ok(id) = XRAY_TRACE_ID.try_with(|xray| xray.root.clone()) {
            fields.set("xray_trace_id", Value::String(id));
        }

        let line = self.format(event.metadata(), message, fields);
        // Logging has nowhere to report its own failure (a closed stdout, say), and
        // failing the request over it would be worse; the line is dropped.
        let _ = self
            .make_writer
            .make_writer_for(event.metadata())
            .write_all(&line);
    }
}

impl<W> LogLayer<W> {
    /// Renders one event as a complete line, newline included, so that it reaches the
    /// writer in one `write_all` and lines from concurrent threads cannot interleave.
    fn format(
        &self,
        meta: &tracing::Metadata<'_>,
        message: Option<Value>,
        mut fields: FieldSet,
    ) -> Vec<u8> {
        let now = chrono::Utc::now();
        let timestamp = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let message = match message {
            Some(Value::String(text)) => self.redactor.clean(&text),
            Some(other) => self.redactor.clean(&other.to_string()),
            None => String::new(),
        };

        let mut entries: Vec<(Cow<'static, str>, Value)> = Vec::with_capacity(fields.0.len() + 6);
        entries.push(("timestamp".into(), Value::String(timestamp)));
        entries.push((
            "level".into(),
            Value::String(meta.level().as_str().to_owned()),
        ));
        entries.push(("message".into(), Value::String(message)));
        entries.push(("target".into(), Value::String(meta.target().to_owned())));
        entries.push(("stage".into(), Value::String(self.stage.clone())));

        let error = self.error_object(&mut fields);
        let emf = if self.emf && self.format == LogFormat::Json {
            emf_metadata(&fields, now.timestamp_millis())
        } else {
            None
        };
        for (name, value) in fields.0 {
            let value = self.redactor.value(name, value);
            let key: Cow<'static, str> = if RESERVED.contains(&name) {
                format!("field.{name}").into()
            } else {
                name.into()
            };
            entries.push((key, value));
        }
        match (emf, error) {
            (Some((aws, failed)), error) => {
                if let Some(error) = error {
                    entries.push(("error_detail".into(), error));
                }
                entries.push(("error".into(), Value::from(u8::from(failed))));
                entries.push(("_aws".into(), aws));
            }
            (None, Some(error)) => entries.push(("error".into(), error)),
            (None, None) => {}
        }
        if self.format == LogFormat::Text {
            return text_line(&entries);
        }

        let mut line = Vec::with_capacity(256);
        if serde_json::to_writer(&mut line, &Ordered(&entries)).is_err() {
            // Serialising owned `Value`s with string keys cannot fail; should that ever
            // change, a stub line is still better than silence.
            line.clear();
            line.extend_from_slice(
                br#"{"level":"ERROR","message":"log line could not be serialised"}"#,
            );
        }
        line.push(b'\n');
        line
    }

    /// Takes `error.type` / `error.message` (and a plain `error` field, the usual
    /// `error = %e` idiom) out of `fields` and builds the nested error object, so
    /// that `error` always has the same shape for queries like `filter error.type = …`.
    fn error_object(&self, fields: &mut FieldSet) -> Option<Value> {
        let kind = fields.take("error.type");
        let message = fields.take("error.message");
        let plain = fields.take("error");
        if kind.is_none() && message.is_none() && plain.is_none() {
            return None;
        }
        let mut error = Map::new();
        if let Some(kind) = kind {
            error.insert("type".into(), self.redactor.value("error.type", kind));
        }
        let (message, detail) = match (message, plain) {
            (Some(message), plain) => (Some(message), plain),
            (None, plain) => (plain, None),
        };
        if let Some(message) = message {
            error.insert(
                "message".into(),
                self.redactor.value("error.message", message),
            );
        }
        if let Some(detail) = detail {
            error.insert("detail".into(), self.redactor.value("error", detail));
        }
        Some(Value::Object(error))
    }
}

/// The `_aws` member of a completion line and whether it failed, or `None` when the line
/// is not a completion line (no numeric `duration_ms`, no `outcome`, or nothing to name
/// as its dimension). `outcome = error` counts as an error; `denied`, `invalid` and the
/// other refusals are answers given as intended.
fn emf_metadata(fields: &FieldSet, timestamp_ms: i64) -> Option<(Value, bool)> {
    let get = |name: &str| {
        fields
            .0
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    };
    if !get("duration_ms").is_some_and(Value::is_number) {
        return None;
    }
    let failed = get("outcome")?.as_str()? == "error";
    let dimension = EMF_DIMENSIONS
        .into_iter()
        .find(|name| get(name).is_some_and(Value::is_string))?;
    let aws = serde_json::json!({
        "Timestamp": timestamp_ms,
        "CloudWatchMetrics": [{
            "Namespace": EMF_NAMESPACE,
            "Dimensions": [["stage", dimension]],
            "Metrics": [
                {"Name": "duration_ms", "Unit": "Milliseconds"},
                {"Name": "error", "Unit": "Count"},
            ],
        }],
    });
    Some((aws, failed))
}

/// Writes the entries [`LogLayer::format`] built as one line of text: timestamp, level
/// and message, then every field as `key=value`. `target` and `stage` are left out:
/// they are the same on every line a person reads in one terminal.
fn text_line(entries: &[(Cow<'static, str>, Value)]) -> Vec<u8> {
    use std::fmt::Write as _;
    let text = |index: usize| {
        entries
            .get(index)
            .and_then(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    // The entries open with the layer's own keys, in the order of `RESERVED`.
    let mut line = format!("{} {:>5} {}", text(0), text(1), one_line(text(2)));
    let mut first = true;
    for (key, value) in entries.iter().skip(RESERVED.len()) {
        let mut pairs = Vec::new();
        flatten(key, value, &mut pairs);
        for (key, value) in pairs {
            line.push_str(if first { "  " } else { " " });
            first = false;
            let _ = write!(line, "{key}={value}");
        }
    }
    line.push('\n');
    line.into_bytes()
}

/// `key=value` pairs of a field; an object (the error) becomes `key.member=value`.
fn flatten(key: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(members) => {
            // The error's class reads best before its message (JSON keeps keys sorted).
            let (kind, rest): (Vec<_>, Vec<_>) = members.iter().partition(|(m, _)| *m == "type");
            for (member, value) in kind.into_iter().chain(rest) {
                flatten(&format!("{key}.{member}"), value, out);
            }
        }
        Value::String(text) => out.push((key.to_owned(), quoted(text))),
        other => out.push((key.to_owned(), other.to_string())),
    }
}

/// A string value as written after `=`: bare when it reads unambiguously, else quoted
/// with JSON escapes, so that a value with spaces cannot pass for several fields.
fn quoted(text: &str) -> String {
    let bare = !text.is_empty()
        && !text
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '=' | '\\'));
    if bare {
        text.to_owned()
    } else {
        Value::String(text.to_owned()).to_string()
    }
}

/// The message with line breaks and other control characters escaped: one event stays
/// one line.
fn one_line(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// Serialises key/value pairs as a JSON object in the given order (serde_json's `Map`
/// sorts keys, and people reading raw lines expect `timestamp` and `level` first).
struct Ordered<'a>(&'a [(Cow<'static, str>, Value)]);

impl Serialize for Ordered<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// The secrets and rules applied to every value before it is written.
struct Redactor {
    /// Longest first, so that a secret containing another is replaced whole rather
    /// than leaving its remainder behind.
    secrets: Vec<String>,
}

impl Redactor {
    fn new(mut secrets: Vec<String>) -> Self {
        secrets.retain(|s| !s.is_empty());
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self { secrets }
    }

    /// Redacts a field value: token-like names are never written, strings are
    /// scrubbed, and numbers are checked too (a numeric secret is unlikely but cheap to
    /// rule out).
    fn value(&self, name: &str, value: Value) -> Value {
        if is_sensitive_name(name) {
            return Value::String(REDACTED.to_owned());
        }
        match value {
            Value::String(text) => Value::String(self.clean(&text)),
            Value::Number(number) => {
                let text = number.to_string();
                if self.clean(&text) == text {
                    Value::Number(number)
                } else {
                    Value::String(REDACTED.to_owned())
                }
            }
            other => other,
        }
    }

    /// Scrubs secrets and webhook tokens out of free text.
    fn clean(&self, text: &str) -> String {
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        redact_webhooks(&scrub(text, &secrets))
    }
}

/// Applies [`redact_webhook_path`] to every whitespace-separated word that contains a
/// webhook path. That helper redacts only the first `webhooks` segment of its input, and
/// messages can quote several URLs; going word by word also keeps the surrounding text
/// (and its exact whitespace) intact.
fn redact_webhooks(text: &str) -> String {
    if !text.contains("/webhooks/") {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    for piece in text.split_inclusive(char::is_whitespace) {
        let word = piece.trim_end_matches(char::is_whitespace);
        if word.contains("/webhooks/") {
            out.push_str(&redact_webhook_path(word));
        } else {
            out.push_str(word);
        }
        out.push_str(&piece[word.len()..]);
    }
    out
}

/// Whether a field's value is a credential by its name alone (see `docs/design.md#logs`,
/// "Redaction"). The last dot-separated segment is checked, case-insensitively, so
/// `http.authorization` and `Authorization` are caught as well.
fn is_sensitive_name(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name).to_ascii_lowercase();
    matches!(
        last.as_str(),
        "token" | "interaction_token" | "authorization" | "secret"
    ) || last.ends_with("_token")
        || last.ends_with("_secret")
}

/// A span's fields, kept raw in the span's extensions; redaction happens when a line is
/// written, so that a layer's own secrets apply even when extensions are shared.
struct SpanFields(FieldSet);

/// Field values in first-recorded order; recording a name again replaces its value in
/// place, which is how later spans and the event override outer spans.
#[derive(Default, Clone)]
struct FieldSet(Vec<(&'static str, Value)>);

impl FieldSet {
    fn set(&mut self, name: &'static str, value: Value) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    fn merge(&mut self, other: &FieldSet) {
        for (name, value) in &other.0 {
            self.set(name, value.clone());
        }
    }

    fn take(&mut self, name: &str) -> Option<Value> {
        let index = self.0.iter().position(|(n, _)| *n == name)?;
        Some(self.0.remove(index).1)
    }
}

impl Visit for FieldSet {
    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity; a string keeps the information.
        let value =
            Number::from_f64(value).map_or_else(|| Value::String(value.to_string()), Value::Number);
        self.set(field.name(), value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field.name(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field.name(), Value::from(value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        // Most i128 values fit a JSON integer; the rest would lose precision as f64.
        let value =
            i64::try_from(value).map_or_else(|_| Value::String(value.to_string()), Value::from);
        self.set(field.name(), value);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        let value =
            u64::try_from(value).map_or_else(|_| Value::String(value.to_string()), Value::from);
        self.set(field.name(), value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field.name(), Value::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), Value::String(value.to_owned()));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // The cause chain is what explains a failure ("request failed" alone does not),
        // but many errors already quote their source in `Display`; skip those repeats.
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !text.contains(&cause_text) {
                text.push_str(": ");
                text.push_str(&cause_text);
            }
            source = cause.source();
        }
        self.set(field.name(), Value::String(text));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%value` arrives here too, wrapped so that `Debug` prints its `Display`.
        self.set(field.name(), Value::String(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing::{Level, debug, error, info, info_span, trace, warn};
    use tracing_subscriber::Registry;

    /// A writer that appends into shared memory, one `write` per lock.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("capture lock").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Capture {
        fn lines(&self) -> Vec<Value> {
            let bytes = self.0.lock().expect("capture lock").clone();
            let text = String::from_utf8(bytes).expect("utf-8 output");
            assert!(
                text.is_empty() || text.ends_with('\n'),
                "last line unterminated: {text:?}"
            );
            text.lines()
                .map(|line| {
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
                })
                .collect()
        }

        fn raw(&self) -> String {
            String::from_utf8(self.0.lock().expect("capture lock").clone()).expect("utf-8 output")
        }
    }

    const SECRET: &str = "ghp_SuperSecretToken123";

    fn dispatch(capture: &Capture) -> tracing::Dispatch {
        let layer = layer(
            "test",
            vec![SECRET.to_owned(), String::new()],
            capture.clone(),
        );
        tracing::Dispatch::new(Registry::default().with(layer))
    }

    /// Runs `f` under a capturing subscriber and returns the parsed lines.
    fn capture(f: impl FnOnce()) -> (Vec<Value>, String) {
        let capture = Capture::default();
        tracing::dispatcher::with_default(&dispatch(&capture), f);
        (capture.lines(), capture.raw())
    }

    fn single(f: impl FnOnce()) -> Value {
        let (lines, _) = capture(f);
        assert_eq!(lines.len(), 1, "expected one line, got {lines:?}");
        lines.into_iter().next().expect("one line")
    }

    #[test]
    fn line_has_required_fields_with_types() {
        let line = single(|| info!(command = "status", "command done"));
        let obj = line.as_object().expect("object");
        let timestamp = obj["timestamp"].as_str().expect("timestamp string");
        // RFC 3339 UTC with exactly three fractional digits and a `Z`.
        assert_eq!(
            timestamp.len(),
            "2026-11-28T04:43:18.123Z".len(),
            "{timestamp}"
        );
        assert!(
            timestamp.ends_with('Z') && timestamp.as_bytes()[19] == b'.',
            "{timestamp}"
        );
        chrono::DateTime::parse_from_rfc3339(timestamp).expect("valid RFC 3339");
        assert_eq!(obj["level"], "INFO");
        assert_eq!(obj["message"], "command done");
        assert_eq!(obj["target"], module_path!());
        assert_eq!(obj["stage"], "test");
        assert_eq!(obj["command"], "status");
        assert!(
            !obj.contains_key("fields") && !obj.contains_key("span") && !obj.contains_key("spans")
        );
    }

    #[test]
    fn keys_are_written_in_stable_order() {
        let (_, raw) = capture(|| info!(zeta = 1, alpha = 2, "m"));
        let order = [
            "\"timestamp\"",
            "\"level\"",
            "\"message\"",
            "\"target\"",
            "\"stage\"",
            "\"zeta\"",
            "\"alpha\"",
        ];
        let positions: Vec<usize> = order.iter().map(|k| raw.find(k).expect(k)).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{raw}");
    }

    #[test]
    fn levels_are_mapped() {
        let (lines, _) = capture(|| {
            error!("e");
            warn!("w");
            info!("i");
            debug!("d");
            trace!("t");
        });
        let levels: Vec<&str> = lines
            .iter()
            .map(|l| l["level"].as_str().expect("level"))
            .collect();
        assert_eq!(levels, ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"]);
    }

    #[test]
    fn value_types_are_preserved() {
        let line = single(|| {
            info!(
                duration_ms = 812_u64,
                delta = -3_i64,
                ok = true,
                ratio = 0.5_f64,
                big = u128::MAX,
                shown = %"display",
                debugged = ?Some(1),
                "done"
            )
        });
        assert!(line["duration_ms"].is_u64() && line["duration_ms"] == 812);
        assert!(line["delta"].is_i64() && line["delta"] == -3);
        assert_eq!(line["ok"], true);
        assert_eq!(line["ratio"], 0.5);
        assert_eq!(line["big"], u128::MAX.to_string());
        assert_eq!(line["shown"], "display");
        assert_eq!(line["debugged"], "Some(1)");
    }

    #[test]
    fn span_fields_are_flattened_including_later_records() {
        let line = single(|| {
            let span = info_span!(
                "command",
                trace_id = "t-1",
                command = "deploy-client",
                duration_ms = tracing::field::Empty,
                outcome = tracing::field::Empty
            );
            let _guard = span.enter();
            span.record("duration_ms", 1234_u64);
            span.record("outcome", "ok");
            info!("command finished");
        });
        assert_eq!(line["trace_id"], "t-1");
        assert_eq!(line["command"], "deploy-client");
        assert!(line["duration_ms"].is_u64(), "{line}");
        assert_eq!(line["duration_ms"], 1234);
        assert_eq!(line["outcome"], "ok");
        assert_eq!(line["message"], "command finished");
    }

    #[test]
    fn inner_spans_and_event_override_outer() {
        let line = single(|| {
            let outer = info_span!(
                "webhook",
                trace_id = "outer",
                event = "workflow_run",
                depth = 1_u64
            );
            let _o = outer.enter();
            let inner = info_span!("job", trace_id = "inner", depth = 2_u64, job = "verify");
            let _i = inner.enter();
            info!(depth = 3_u64, "x");
        });
        assert_eq!(line["trace_id"], "inner");
        assert_eq!(line["event"], "workflow_run");
        assert_eq!(line["job"], "verify");
        assert_eq!(line["depth"], 3);
    }

    #[test]
    fn explicit_parent_span_is_used() {
        let line = single(|| {
            let span = info_span!("job", trace_id = "t-9");
            info!(parent: &span, "from elsewhere");
        });
        assert_eq!(line["trace_id"], "t-9");
    }

    #[test]
    fn error_fields_are_nested() {
        let line = single(
            || error!(error.type = "github_api", error.message = "404 Not Found", github_status = 404_u64, "dispatch failed"),
        );
        assert_eq!(
            line["error"],
            serde_json::json!({"type": "github_api", "message": "404 Not Found"})
        );
        assert!(line.get("error.type").is_none() && line.get("error.message").is_none());
        assert_eq!(line["github_status"], 404);
    }

    #[test]
    fn error_type_on_span_and_plain_error_field_are_nested() {
        let line = single(|| {
            let span = info_span!("command", error.type = tracing::field::Empty);
            let _g = span.enter();
            span.record("error.type", "timeout");
            let err = io::Error::other("connection reset");
            warn!(error = %err, "probe failed");
        });
        assert_eq!(
            line["error"],
            serde_json::json!({"type": "timeout", "message": "connection reset"})
        );
    }

    #[test]
    fn error_values_include_their_cause_chain() {
        #[derive(Debug)]
        struct Outer(io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("request failed")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let err = Outer(io::Error::other("dns error"));
        let line = single(|| {
            error!(
                error.message = &err as &(dyn std::error::Error + 'static),
                "x"
            )
        });
        assert_eq!(line["error"]["message"], "request failed: dns error");
    }

    #[test]
    fn secrets_never_appear() {
        let (lines, raw) = capture(|| {
            let span = info_span!(
                "command",
                header = format!("Bearer {SECRET}").as_str(),
                later = tracing::field::Empty
            );
            let _g = span.enter();
            span.record("later", format!("x{SECRET}x").as_str());
            info!(url = %format!("https://api.github.com/?t={SECRET}"), "calling with {SECRET}");
            error!(error.message = %format!("bad credentials {SECRET}"), "failed");
        });
        assert!(!raw.contains(SECRET), "{raw}");
        assert_eq!(lines[0]["message"], "calling with [REDACTED]");
        assert_eq!(lines[0]["url"], "https://api.github.com/?t=[REDACTED]");
        assert_eq!(lines[0]["header"], "Bearer [REDACTED]");
        assert_eq!(lines[0]["later"], "x[REDACTED]x");
        assert_eq!(lines[1]["error"]["message"], "bad credentials [REDACTED]");
    }

    #[test]
    fn webhook_urls_are_redacted() {
        let url = "https://discord.com/api/v10/webhooks/1/aW50ZXJhY3Rpb246TOKEN/messages/@original";
        let (lines, raw) = capture(|| {
            warn!(url, "PATCH {url} failed; retry {url} later");
            let span = info_span!("followup", endpoint = url);
            let _g = span.enter();
            info!("sent");
        });
        assert!(!raw.contains("aW50ZXJhY3Rpb246TOKEN"), "{raw}");
        let redacted = "https://discord.com/api/v10/webhooks/1/[REDACTED]/messages/@original";
        assert_eq!(lines[0]["url"], redacted);
        assert_eq!(
            lines[0]["message"],
            format!("PATCH {redacted} failed; retry {redacted} later")
        );
        assert_eq!(lines[1]["endpoint"], redacted);
    }

    #[test]
    fn token_like_fields_are_redacted() {
        let line = single(|| {
            info!(
                token = "abc",
                interaction_token = "def",
                authorization = "Bearer x",
                bot_token = "ghi",
                webhook_secret = "jkl",
                http.Authorization = "Basic y",
                numeric_token = 42_u64,
                user_id = 42_u64,
                "m"
            )
        });
        for key in [
            "token",
            "interaction_token",
            "authorization",
            "bot_token",
            "webhook_secret",
            "http.Authorization",
            "numeric_token",
        ] {
            assert_eq!(line[key], REDACTED, "{key}");
        }
        assert_eq!(line["user_id"], 42);
    }

    #[test]
    fn reserved_names_do_not_duplicate_keys() {
        let (lines, raw) = capture(|| {
            let span = info_span!("s", message = "span message", level = "custom");
            let _g = span.enter();
            info!(target = "field", "real message");
        });
        assert_eq!(raw.matches("\"level\"").count(), 1, "{raw}");
        assert_eq!(raw.matches("\"message\"").count(), 1, "{raw}");
        assert_eq!(lines[0]["message"], "real message");
        assert_eq!(lines[0]["field.message"], "span message");
        assert_eq!(lines[0]["field.level"], "custom");
        assert_eq!(lines[0]["field.target"], "field");
    }

    #[test]
    fn event_without_message_has_empty_message() {
        let line = single(|| info!(outcome = "ok"));
        assert_eq!(line["message"], "");
        assert_eq!(line["outcome"], "ok");
    }

    #[test]
    fn concurrent_lines_do_not_interleave() {
        let capture = Capture::default();
        let dispatch = dispatch(&capture);
        let threads: Vec<_> = (0..4_u64)
            .map(|thread| {
                let dispatch = dispatch.clone();
                std::thread::spawn(move || {
                    tracing::dispatcher::with_default(&dispatch, || {
                        for i in 0..200_u64 {
                            info!(thread, i, padding = "x".repeat(200).as_str(), "line");
                        }
                    })
                })
            })
            .collect();
        for handle in threads {
            handle.join().expect("thread");
        }
        let lines = capture.lines();
        assert_eq!(lines.len(), 800);
        assert!(
            lines
                .iter()
                .all(|l| l["message"] == "line" && l["i"].is_u64())
        );
    }

    #[test]
    fn two_layers_can_share_a_registry() {
        let first = Capture::default();
        let second = Capture::default();
        let subscriber = Registry::default()
            .with(layer("a", vec![], first.clone()))
            .with(layer("b", vec![SECRET.to_owned()], second.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = info_span!("s", key = SECRET);
            let _g = span.enter();
            info!("m");
        });
        assert_eq!(first.lines()[0]["key"], SECRET);
        assert_eq!(second.lines()[0]["key"], REDACTED);
    }

    #[test]
    fn invalid_filter_falls_back_to_info() {
        let (filter, rejected) = parse_filter("valine=loud", "info");
        assert!(rejected.is_some());
        assert_eq!(filter.max_level_hint(), Some(Level::INFO.into()));
        let (_, accepted) = parse_filter("info,valine::github=debug", "info");
        assert!(accepted.is_none());
        let (filter, empty) = parse_filter("  ", "info");
        assert!(empty.is_none());
        assert_eq!(filter.max_level_hint(), Some(Level::INFO.into()));
    }

    #[test]
    fn debug_output_hides_secrets() {
        let layer = layer("prod", vec![SECRET.to_owned()], Capture::default());
        let text = format!("{layer:?}");
        assert!(!text.contains(SECRET) && text.contains("prod"), "{text}");
    }

    /// Runs `f` under a capturing subscriber whose layer writes EMF.
    fn capture_emf(f: impl FnOnce()) -> Vec<Value> {
        let capture = Capture::default();
        let layer = layer("prod", vec![], capture.clone()).with_emf(true);
        tracing::subscriber::with_default(Registry::default().with(layer), f);
        capture.lines()
    }

    /// The structure the EMF specification requires of a record: an integer
    /// `_aws.Timestamp`, a namespace, at most 30 dimensions per set, each dimension and
    /// metric a top-level member (dimensions strings, metrics numbers), units from the
    /// CloudWatch list.
    fn assert_valid_emf(line: &Value) {
        const UNITS: [&str; 4] = ["Milliseconds", "Count", "Seconds", "None"];
        let aws = &line["_aws"];
        assert!(aws["Timestamp"].is_i64(), "{line}");
        let directives = aws["CloudWatchMetrics"].as_array().expect("directives");
        assert_eq!(directives.len(), 1, "{line}");
        let directive = &directives[0];
        assert_eq!(directive["Namespace"], "Valine");
        for set in directive["Dimensions"].as_array().expect("dimension sets") {
            let set = set.as_array().expect("dimension set");
            assert!(!set.is_empty() && set.len() <= 30, "{line}");
            for name in set {
                let name = name.as_str().expect("dimension name");
                assert!(
                    line[name].is_string(),
                    "dimension {name} not a top-level string: {line}"
                );
            }
        }
        let metrics = directive["Metrics"].as_array().expect("metrics");
        assert!(!metrics.is_empty() && metrics.len() <= 100, "{line}");
        for metric in metrics {
            let name = metric["Name"].as_str().expect("metric name");
            assert!(
                line[name].is_number(),
                "metric {name} not a top-level number: {line}"
            );
            assert!(
                UNITS.contains(&metric["Unit"].as_str().expect("unit")),
                "{line}"
            );
        }
    }

    fn dimension_sets(line: &Value) -> &Value {
        &line["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    }

    #[test]
    fn completion_lines_are_emf_records() {
        let lines = capture_emf(|| {
            let command = info_span!("command", trace_id = "t", command = "status");
            command.in_scope(|| {
                info!("not a completion line");
                info!(duration_ms = 812_u64, outcome = "ok", "command finished");
            });
            let webhook = info_span!("webhook", event = "workflow_run", delivery_id = "d");
            webhook.in_scope(|| {
                error!(duration_ms = 3_u64, outcome = "error", error.type = "store_unavailable", error.message = "down", "webhook finished");
            });
            info!(
                job = "poll_run",
                duration_ms = 40_u64,
                outcome = "ok",
                "job finished"
            );
        });
        assert_eq!(lines.len(), 4);
        assert!(lines[0].get("_aws").is_none() && lines[0].get("error").is_none());

        let command = &lines[1];
        assert_valid_emf(command);
        assert_eq!(
            dimension_sets(command),
            &serde_json::json!([["stage", "command"]])
        );
        assert_eq!(command["stage"], "prod");
        assert_eq!(command["command"], "status");
        assert_eq!(command["duration_ms"], 812);
        assert_eq!(command["error"], 0);

        let webhook = &lines[2];
        assert_valid_emf(webhook);
        assert_eq!(
            dimension_sets(webhook),
            &serde_json::json!([["stage", "event"]])
        );
        assert_eq!(webhook["error"], 1);
        assert_eq!(webhook["error_detail"]["type"], "store_unavailable");

        let job = &lines[3];
        assert_valid_emf(job);
        assert_eq!(dimension_sets(job), &serde_json::json!([["stage", "job"]]));
    }

    #[test]
    fn without_emf_completion_lines_stay_plain() {
        let line = single(
            || error!(command = "status", duration_ms = 1_u64, outcome = "error", error.type = "x", "done"),
        );
        assert!(line.get("_aws").is_none());
        assert_eq!(line["error"]["type"], "x");
    }

    #[test]
    fn xray_root_is_parsed_from_the_trace_header() {
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        assert_eq!(
            xray_root(header),
            Some("1-5759e988-bd862e3fe1be46a994272793")
        );
        assert_eq!(
            xray_root("Sampled=0; Root=1-5759e988-bd862e3fe1be46a994272793"),
            Some("1-5759e988-bd862e3fe1be46a994272793")
        );
        for bad in [
            "",
            "Parent=53995c3f42cd8ad8",
            "Root=1-5759e988",
            "Root=2-5759e988-bd862e3fe1be46a994272793",
            "Root=1-5759e98z-bd862e3fe1be46a994272793",
            "Root=1-5759e988-bd862e3fe1be46a994272793-extra",
        ] {
            assert_eq!(xray_root(bad), None, "{bad}");
        }
    }

    #[test]
    fn lines_inside_the_xray_scope_carry_its_trace_id() {
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let (lines, _) = capture(|| {
            info!("before");
            with_xray_trace_id_sync(header, || {
                let span = info_span!("command", command = "status");
                span.in_scope(|| info!("inside"));
            });
            info!("after");
        });
        assert!(lines[0].get("xray_trace_id").is_none());
        assert_eq!(
            lines[1]["xray_trace_id"],
            "1-5759e988-bd862e3fe1be46a994272793"
        );
        assert_eq!(lines[1]["command"], "status");
        assert!(lines[2].get("xray_trace_id").is_none());
    }

    #[tokio::test]
    async fn the_xray_scope_covers_awaited_work() {
        let capture = Capture::default();
        let _default = tracing::dispatcher::set_default(&dispatch(&capture));
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793";
        with_xray_trace_id(header, async {
            tokio::task::yield_now().await;
            info!("awaited");
        })
        .await;
        assert_eq!(
            capture.lines()[0]["xray_trace_id"],
            "1-5759e988-bd862e3fe1be46a994272793"
        );
    }

    #[test]
    fn init_twice_does_not_panic() {
        // "off" keeps the global subscriber silent for the rest of the test binary; the
        // other tests use scoped dispatchers, which take precedence.
        let settings = LogSettings {
            filter: Some("off"),
            format: None,
            stage: "test",
        };
        init(settings, vec![SECRET.to_owned()], LogEdge::Cli);
        init(settings, vec![], LogEdge::Serve);
    }

    #[test]
    fn cli_sub_commands_default_to_warn_and_servers_to_info() {
        assert_eq!(LogEdge::Cli.default_filter(), "warn");
        assert_eq!(LogEdge::Serve.default_filter(), "info");
        assert_eq!(LogEdge::Lambda.default_filter(), "info");
        let (filter, _) = parse_filter("", LogEdge::Cli.default_filter());
        assert_eq!(filter.max_level_hint(), Some(Level::WARN.into()));
        let (filter, rejected) = parse_filter("valine=loud", LogEdge::Cli.default_filter());
        assert!(rejected.is_some());
        assert_eq!(filter.max_level_hint(), Some(Level::WARN.into()));
    }

    #[test]
    fn format_is_text_on_a_terminal_json_elsewhere_and_always_json_under_lambda() {
        use LogFormat::{Json, Text};
        // (requested, terminal, lambda) → (format, text overruled)
        let cases = [
            (None, true, false, Text, false),
            (None, false, false, Json, false),
            (Some(Json), true, false, Json, false),
            (Some(Text), false, false, Text, false),
            (None, true, true, Json, false),
            (Some(Json), true, true, Json, false),
            (Some(Text), true, true, Json, true),
            (Some(Text), false, true, Json, true),
        ];
        for (requested, terminal, lambda, format, overruled) in cases {
            assert_eq!(
                choose_format(requested, terminal, lambda),
                (format, overruled),
                "{requested:?} terminal={terminal} lambda={lambda}"
            );
        }
        assert_eq!(" TEXT ".parse::<LogFormat>(), Ok(Text));
        assert_eq!("json".parse::<LogFormat>(), Ok(Json));
        assert!(
            "yaml"
                .parse::<LogFormat>()
                .unwrap_err()
                .contains("json or text")
        );
    }

    /// Runs `f` under a capturing subscriber writing text; returns the raw output.
    fn capture_text(f: impl FnOnce()) -> String {
        let capture = Capture::default();
        let layer = layer("test", vec![SECRET.to_owned()], capture.clone())
            .with_format(LogFormat::Text)
            // EMF belongs to JSON: a text line never carries `_aws`.
            .with_emf(true);
        tracing::subscriber::with_default(Registry::default().with(layer), f);
        capture.raw()
    }

    #[test]
    fn text_lines_have_time_level_message_then_fields() {
        let raw = capture_text(|| {
            let span = info_span!("command", trace_id = "t-1", command = "/deploy-client");
            let _g = span.enter();
            info!(run_id = 3001_u64, ok = true, "dispatch sent");
            warn!(reason = "two words", empty = "", "line one\nline two");
            error!(duration_ms = 5_u64, outcome = "error", error.type = "github_api", error.message = "404 Not Found", "failed");
        });
        let lines: Vec<&str> = raw.lines().collect();
        assert_eq!(lines.len(), 3, "{raw}");
        let (timestamp, rest) = lines[0].split_once(' ').unwrap();
        chrono::DateTime::parse_from_rfc3339(timestamp).expect("RFC 3339 timestamp");
        assert!(
            timestamp.ends_with('Z') && timestamp.len() == 24,
            "{timestamp}"
        );
        assert_eq!(
            rest,
            " INFO dispatch sent  trace_id=t-1 command=/deploy-client run_id=3001 ok=true"
        );
        assert!(
            lines[1].ends_with(r#" WARN line one\nline two  trace_id=t-1 command=/deploy-client reason="two words" empty="""#),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].ends_with(
                r#"ERROR failed  trace_id=t-1 command=/deploy-client duration_ms=5 outcome=error error.type=github_api error.message="404 Not Found""#
            ),
            "{}",
            lines[2]
        );
        assert!(!raw.contains("_aws") && !raw.contains("stage"), "{raw}");
    }

    #[test]
    fn text_lines_are_redacted_like_json() {
        let url = "https://discord.com/api/v10/webhooks/1/aW50ZXJhY3Rpb246TOKEN/messages/@original";
        let raw = capture_text(|| {
            let span = info_span!("command", header = format!("Bearer {SECRET}").as_str());
            let _g = span.enter();
            info!(url, interaction_token = "abc", "calling with {SECRET}");
            error!(error.message = %format!("bad credentials {SECRET}"), "failed");
        });
        assert!(
            !raw.contains(SECRET) && !raw.contains("aW50ZXJhY3Rpb246TOKEN"),
            "{raw}"
        );
        assert!(raw.contains("calling with [REDACTED]"), "{raw}");
        assert!(raw.contains(r#"header="Bearer [REDACTED]""#), "{raw}");
        assert!(raw.contains("interaction_token=[REDACTED]"), "{raw}");
        assert!(raw.contains("/webhooks/1/[REDACTED]/messages"), "{raw}");
        assert!(
            raw.contains(r#"error.message="bad credentials [REDACTED]""#),
            "{raw}"
        );
    }
}
