//! What Valine needs from a workflow it dispatches, read from the workflow file itself:
//! a `workflow_dispatch` trigger declaring every input Valine sends, and a `run-name`
//! that carries `inputs.correlation_id`. Without the inputs GitHub refuses the dispatch
//! (422 "Unexpected inputs"); without the `run-name`, a server that does not return the
//! run's id leaves Valine unable to tell which run its dispatch started. Both are the
//! set-up mistakes `valine doctor` exists to catch.

use yaml_serde::Value;

/// The inputs `/deploy-client` and `/rollback` send with the deploy workflow.
pub const DEPLOY_INPUTS: &[&str] = &["correlation_id", "requester", "VITE_API_BASE"];
/// The inputs `/diagnose` sends with the diagnose workflow.
pub const DIAGNOSE_INPUTS: &[&str] = &["correlation_id", "requester", "frontend_url", "api_base"];

/// What a workflow file says about dispatching it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Findings {
    /// `on:` names `workflow_dispatch`.
    pub dispatchable: bool,
    /// Inputs Valine sends that `workflow_dispatch.inputs` does not declare.
    pub missing_inputs: Vec<String>,
    /// `run-name` mentions `inputs.correlation_id` (also as `github.event.inputs.…`).
    pub run_name_correlated: bool,
}

impl Findings {
    pub fn complete(&self) -> bool {
        self.dispatchable && self.missing_inputs.is_empty() && self.run_name_correlated
    }

    /// What is wrong, in words, with what to write in the file; empty when complete.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.dispatchable {
            problems.push("no `on: workflow_dispatch` trigger".to_owned());
        }
        if !self.missing_inputs.is_empty() {
            problems.push(format!(
                "workflow_dispatch lacks the inputs {}",
                self.missing_inputs.join(", ")
            ));
        }
        if !self.run_name_correlated {
            problems.push("run-name does not contain ${{ inputs.correlation_id }}".to_owned());
        }
        problems
    }
}

/// Reads the workflow `text` against the inputs Valine sends; `Err` when it is not a
/// YAML mapping (GitHub would not run it either).
pub fn examine(text: &str, inputs: &[&str]) -> Result<Findings, String> {
    let doc: Value = yaml_serde::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let Value::Mapping(doc) = doc else {
        return Err("not a YAML mapping".to_owned());
    };
    // YAML 1.1 readers take a bare `on` for `true`; accept either spelling of the key.
    let on = doc
        .get(Value::String("on".to_owned()))
        .or_else(|| doc.get(Value::Bool(true)));
    let dispatch = on.and_then(dispatch_trigger);
    let declared: Vec<String> = dispatch
        .as_ref()
        .and_then(|d| d.as_ref())
        .and_then(|d| d.get("inputs"))
        .and_then(Value::as_mapping)
        .map(|m| {
            m.keys()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let run_name = doc
        .get(Value::String("run-name".to_owned()))
        .and_then(Value::as_str)
        .unwrap_or_default();
    Ok(Findings {
        dispatchable: dispatch.is_some(),
        missing_inputs: inputs
            .iter()
            .filter(|input| !declared.iter().any(|d| d == *input))
            .map(|input| (*input).to_owned())
            .collect(),
        run_name_correlated: run_name.contains("inputs.correlation_id"),
    })
}

/// The `workflow_dispatch` entry of an `on:` value: `Some(None)` when it is named
/// without settings (`on: workflow_dispatch`, `on: [push, workflow_dispatch]`,
/// `workflow_dispatch:` with nothing under it), `Some(Some(settings))` with them.
fn dispatch_trigger(on: &Value) -> Option<Option<Value>> {
    match on {
        Value::String(event) => (event == "workflow_dispatch").then_some(None),
        Value::Sequence(events) => events
            .iter()
            .any(|e| e.as_str() == Some("workflow_dispatch"))
            .then_some(None),
        Value::Mapping(events) => events
            .get(Value::String("workflow_dispatch".to_owned()))
            .map(|settings| (!settings.is_null()).then(|| settings.clone())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name: Client deploy
run-name: "Deploy ${{ inputs.VITE_API_BASE }} [${{ inputs.correlation_id }}]"
on:
  push:
    branches: [main]
  workflow_dispatch:
    inputs:
      correlation_id:
        required: false
      requester:
        required: false
      VITE_API_BASE:
        required: false
jobs:
  deploy:
    runs-on: ubuntu-latest
    steps: [{run: echo}]
"#;

    #[test]
    fn a_complete_deploy_workflow_passes() {
        let findings = examine(GOOD, DEPLOY_INPUTS).unwrap();
        assert!(findings.complete(), "{findings:?}");
        assert!(findings.problems().is_empty());
    }

    #[test]
    fn missing_inputs_and_run_name_are_named() {
        let text = "on:\n  workflow_dispatch:\n    inputs:\n      requester: {}\njobs: {}\n";
        let findings = examine(text, DEPLOY_INPUTS).unwrap();
        assert!(findings.dispatchable);
        assert_eq!(findings.missing_inputs, ["correlation_id", "VITE_API_BASE"]);
        assert!(!findings.run_name_correlated);
        let problems = findings.problems().join("; ");
        assert!(problems.contains("lacks the inputs correlation_id, VITE_API_BASE"));
        assert!(problems.contains("run-name"));
    }

    #[test]
    fn every_spelling_of_the_trigger_is_understood() {
        for text in [
            "on: workflow_dispatch\n",
            "on: [push, workflow_dispatch]\n",
            "on:\n  workflow_dispatch:\n",
            "true:\n  workflow_dispatch:\n",
        ] {
            assert!(examine(text, &[]).unwrap().dispatchable, "{text}");
        }
        for text in [
            "on: push\n",
            "on: [push]\n",
            "on:\n  push: {}\n",
            "name: x\n",
        ] {
            let findings = examine(text, DIAGNOSE_INPUTS).unwrap();
            assert!(!findings.dispatchable, "{text}");
            assert_eq!(findings.missing_inputs.len(), DIAGNOSE_INPUTS.len());
        }
    }

    #[test]
    fn the_older_event_inputs_spelling_counts() {
        let text = "run-name: x ${{ github.event.inputs.correlation_id }}\non: workflow_dispatch\n";
        assert!(examine(text, &[]).unwrap().run_name_correlated);
    }

    #[test]
    fn text_that_is_not_a_workflow_is_an_error() {
        assert!(examine("on: [unclosed", DEPLOY_INPUTS).is_err());
        assert!(examine("- a\n- b\n", DEPLOY_INPUTS).is_err());
    }
}
