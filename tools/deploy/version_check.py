"""A changed setting must reach the functions' alias, not only $LATEST.

SAM's AutoPublishAlias publishes a new Lambda version only when the function's resolved
properties change, and a `!Ref` to a parameter reaches SAM resolved only where
CloudFormation's language extensions resolve it first (Resources, not Globals). This runs
deploy/template.yaml through both transforms offline, as CloudFormation runs them
(AWS::LanguageExtensions with the SAM CLI's port of the service's package, then
AWS::Serverless with aws-sam-translator), and fails unless changing any one parameter
gives every function a new version. Run by scripts/test with .venv-deploy's python.
"""

import copy
import logging
import sys
import warnings
from pathlib import Path

from samcli.lib.cfn_language_extensions.api import process_template
from samcli.lib.cfn_language_extensions.models import PseudoParameterValues
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

TEMPLATE = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "deploy" / "template.yaml")

# Parameters CloudFormation would pass (all strings), valid for every constraint.
BASE = {
    "Stage": "prod",
    "DiscordPublicKey": "ab" * 32,
    "DiscordApplicationId": "1234567890123456789",
    "GitHubRepo": "octo-org/octo-repo",
    "RateLimitPerMinute": "10",
}


class NoManagedPolicies:
    def load(self):
        return {}


def versions(parameters):
    """The logical id of each function's published version for these parameters."""
    template = yaml_parse(TEMPLATE.read_text())
    pseudo = PseudoParameterValues(region="eu-west-1", account_id="123456789012")
    expanded = process_template(copy.deepcopy(template), parameter_values=parameters, pseudo_parameters=pseudo)
    expanded["Transform"] = "AWS::Serverless-2016-10-31"
    for resource in expanded["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://artifacts/valine.zip"
    if "CodeUri" in expanded.get("Globals", {}).get("Function", {}):
        expanded["Globals"]["Function"]["CodeUri"] = "s3://artifacts/valine.zip"
    output = transform(expanded, parameters, NoManagedPolicies())
    return {
        id[: id.index("Version")]: id
        for id, resource in output["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Version"
    }


def changed(name, spec):
    """Another valid value for parameter `name`."""
    if "AllowedValues" in spec:
        current = BASE.get(name, spec.get("Default"))
        return next(v for v in spec["AllowedValues"] if str(v) != str(current))
    samples = {
        "DiscordPublicKey": "cd" * 32,
        "DiscordApplicationId": "42",
        "GitHubRepo": "octo-org/other-repo",
        "RateLimitPerMinute": "11",
        "FrontendBaseUrl": "https://example.com",
        "ViteApiBase": "https://api.example.com",
        "AllowedDomains": "example.com",
        "DeployWorkflow": "other.yml",
        "DiagnoseWorkflow": "diagnose.yml",
        "DeployBranch": "release",
        "SecretsRevision": "2",
    }
    return samples.get(name, "42")


def main():
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)  # the translator's notes on its own metrics and toggles
    parameters = yaml_parse(TEMPLATE.read_text())["Parameters"]
    before = versions(BASE)
    if len(before) != 3:
        sys.exit(f"expected three published versions, got {sorted(before)}")
    failures = []
    # Stage renames everything, and AlarmTopicArn configures no function.
    for name in sorted(set(parameters) - {"Stage", "AlarmTopicArn"}):
        after = versions({**BASE, name: changed(name, parameters[name])})
        same = sorted(f for f in before if after.get(f) == before[f])
        if same:
            failures.append(f"{name}: no new version for {', '.join(same)}")
    if failures:
        sys.exit("a changed setting would stay on $LATEST:\n  " + "\n  ".join(failures))
    print(f"every setting publishes a new version of {', '.join(sorted(before))}")


if __name__ == "__main__":
    main()
