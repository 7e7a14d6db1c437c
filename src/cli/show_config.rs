//! `valine config`: the configuration in effect, one variable a line with its value and
//! where it came from, so an operator can see what Valine will use before starting it.
//! Secrets show only as `(set)`. An invalid value is marked on its line and the command
//! exits 2 naming it, after printing the rest.

use crate::config::Config;
use crate::config::vars::{Effective, Origin};
use crate::telemetry::LogEdge;

use super::{Exit, exit, init_logs, out};

pub async fn run(json: bool) -> Result<u8, Exit> {
    let (listed, loaded) = Config::inspect(std::env::vars().collect()).await;
    let invalid = loaded
        .as_ref()
        .err()
        .map(|e| (e.var().to_owned(), e.to_string()));
    if let Ok(config) = &loaded {
        init_logs(config, LogEdge::Cli);
    }
    let bad = invalid.as_ref().map(|(var, _)| var.as_str());
    let text = if json {
        listed
            .iter()
            .map(|e| format!("{}\n", json_line(e, bad)))
            .collect()
    } else {
        table(&listed, bad)
    };
    out::print(&text)?;
    match invalid {
        None => Ok(exit::OK),
        Some((_, message)) => Err(Exit::usage(message)),
    }
}

/// Where the value came from, with the SSM parameter when there is one.
fn source(origin: &Origin) -> String {
    match origin {
        Origin::Ssm(parameter) => format!("ssm:{parameter}"),
        other => other.as_str().to_owned(),
    }
}

/// Aligned columns: variable, source, value; `-` for a variable that is not set.
fn table(listed: &[Effective], bad: Option<&str>) -> String {
    let name_width = listed.iter().map(|e| e.var.name.len()).max().unwrap_or(0);
    let source_width = listed
        .iter()
        .map(|e| source(&e.origin).len())
        .max()
        .unwrap_or(0)
        .max("SOURCE".len());
    let mut text = format!(
        "{:name_width$}  {:source_width$}  VALUE\n",
        "VARIABLE", "SOURCE"
    );
    for e in listed {
        let value = e.shown.as_deref().unwrap_or("-");
        let mark = if bad == Some(e.var.name) {
            "  ❌ invalid"
        } else {
            ""
        };
        text.push_str(&format!(
            "{:name_width$}  {:source_width$}  {value}{mark}\n",
            e.var.name,
            source(&e.origin)
        ));
    }
    text
}

/// One variable as a JSON object: `variable`, `value` (null when unset), `source`,
/// `secret`, and `parameter` for a value read from SSM, `invalid` for the bad one.
fn json_line(e: &Effective, bad: Option<&str>) -> serde_json::Value {
    let mut line = serde_json::json!({
        "variable": e.var.name,
        "value": e.shown,
        "source": e.origin.as_str(),
        "secret": e.var.secret,
    });
    if let Origin::Ssm(parameter) = &e.origin {
        line["parameter"] = parameter.as_str().into();
    }
    if bad == Some(e.var.name) {
        line["invalid"] = true.into();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::vars::{SET, find};

    fn listed() -> Vec<Effective> {
        vec![
            Effective {
                var: find("STAGE").expect("a variable"),
                shown: Some("prod".into()),
                origin: Origin::File,
            },
            Effective {
                var: find("GITHUB_TOKEN").expect("a variable"),
                shown: Some(SET.into()),
                origin: Origin::Ssm("/valine/prod/github-token".into()),
            },
            Effective {
                var: find("GITHUB_REPO").expect("a variable"),
                shown: None,
                origin: Origin::Default,
            },
        ]
    }

    #[test]
    fn the_table_aligns_columns_and_marks_the_invalid_variable() {
        let text = table(&listed(), Some("STAGE"));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "VARIABLE      SOURCE                         VALUE"
        );
        assert_eq!(
            lines[1],
            "STAGE         file                           prod  ❌ invalid"
        );
        assert_eq!(
            lines[2],
            "GITHUB_TOKEN  ssm:/valine/prod/github-token  (set)"
        );
        assert_eq!(lines[3], "GITHUB_REPO   default                        -");
    }

    #[test]
    fn json_lines_carry_source_secret_and_parameter() {
        let lines: Vec<_> = listed().iter().map(|e| json_line(e, None)).collect();
        assert_eq!(
            lines[1],
            serde_json::json!({"variable": "GITHUB_TOKEN", "value": "(set)", "source": "ssm",
                               "secret": true, "parameter": "/valine/prod/github-token"})
        );
        assert_eq!(lines[2]["value"], serde_json::Value::Null);
        assert!(lines[0].get("invalid").is_none());
    }
}
