"""Reads `template.yaml`: resources, routes, event sources and environment, with intrinsics resolved locally."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cfn_tools import load_yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
STACK_NAME = "tensorgate-local"


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: str

    def pattern(self) -> re.Pattern[str]:
        """API Gateway matching: `{name}` is one segment, `{name+}` the rest; a trailing slash is ignored."""
        regex = ""
        for part in self.path.strip("/").split("/"):
            if part.startswith("{") and part.endswith("+}"):
                regex += f"/(?P<{part[1:-2]}>.+)"
            elif part.startswith("{") and part.endswith("}"):
                regex += f"/(?P<{part[1:-1]}>[^/]+)"
            else:
                regex += "/" + re.escape(part)
        # \Z, not $: `$` also matches before a final line break, and API Gateway routes `/public/%0A` by its slug.
        return re.compile(f"^{regex}/?\\Z")


@dataclass(frozen=True)
class QueueSource:
    function: str
    queue: str
    batch_size: int
    reports_batch_failures: bool


@dataclass
class Function:
    logical_id: str
    module: str
    attribute: str
    timeout: int
    environment: dict[str, str] = field(default_factory=dict)


class Template:
    def __init__(self, path: Path = TEMPLATE_PATH, parameters: dict[str, str] | None = None) -> None:
        self.document: dict[str, Any] = load_yaml(path.read_text())
        self.resources: dict[str, Any] = self.document["Resources"]
        self.parameters = {
            name: str(spec.get("Default", "")) for name, spec in self.document.get("Parameters", {}).items()
        } | (parameters or {})
        self.endpoint = "http://127.0.0.1"

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {name: spec for name, spec in self.resources.items() if spec["Type"] == kind}

    # -- names of local resources ------------------------------------------------------------

    def physical_name(self, logical_id: str) -> str:
        spec = self.resources[logical_id]
        if spec["Type"] == "AWS::S3::Bucket":
            return str(self.resolve(spec["Properties"].get("BucketName", logical_id.lower())))
        return logical_id

    def queue_url(self, logical_id: str) -> str:
        return f"{self.endpoint}/{ACCOUNT_ID}/{logical_id}"

    def arn(self, logical_id: str) -> str:
        kind = self.resources[logical_id]["Type"]
        if kind == "AWS::SQS::Queue":
            return f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{logical_id}"
        if kind == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{self.physical_name(logical_id)}"
        if kind == "AWS::DynamoDB::Table":
            return f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{logical_id}"
        return f"arn:aws:local:{REGION}:{ACCOUNT_ID}:{logical_id}"

    def ref(self, name: str) -> str:
        pseudo = {
            "AWS::StackName": STACK_NAME,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Region": REGION,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if self.resources[name]["Type"] == "AWS::SQS::Queue":
            return self.queue_url(name)
        return self.physical_name(name)

    def get_att(self, logical_id: str, attribute: str) -> str:
        if attribute == "Arn":
            return self.arn(logical_id)
        if attribute == "QueueName":
            return logical_id
        if attribute == "QueueUrl":
            return self.queue_url(logical_id)
        raise KeyError(f"{logical_id}.{attribute} has no local value")

    def resolve(self, value: Any) -> Any:
        """Resolve Ref, Fn::GetAtt, Fn::Sub, Fn::Join and Fn::If the way CloudFormation would, locally."""
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self.ref(argument)
            if key == "Fn::GetAtt":
                logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self.get_att(logical_id, attribute)
            if key == "Fn::Sub":
                return self._sub(argument)
            if key == "Fn::Join":
                separator, items = argument
                return separator.join(str(item) for item in self.resolve(items))
            if key == "Fn::If":
                # Only the branch the condition picks is resolved: the other may name resources the
                # condition leaves out (the workers', locally).
                condition, when_true, when_false = argument
                return self.resolve(when_true if self.condition(condition) else when_false)
        return {key: self.resolve(item) for key, item in value.items()}

    def condition(self, name: str) -> bool:
        """A condition of the template's Conditions section, from the parameters (the workers' are false locally)."""
        return bool(self._evaluate(self.document.get("Conditions", {})[name]))

    def _evaluate(self, value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Fn::And":
                return all(self._evaluate(item) for item in argument)
            if key == "Fn::Or":
                return any(self._evaluate(item) for item in argument)
            if key == "Fn::Not":
                return not self._evaluate(argument[0])
            if key == "Fn::Equals":
                return self._evaluate(argument[0]) == self._evaluate(argument[1])
            if key == "Condition":
                return self.condition(argument)
            if key == "Ref" and argument in self.parameters:
                return self.parameters[argument]
        return self.resolve(value)

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name and not name.startswith("AWS::"):
                return self.get_att(*name.split(".", 1))
            return self.ref(name)

        return re.sub(r"\$\{([^}!]+)\}", replace, text)

    # -- functions, routes and event sources ------------------------------------------------

    def functions(self) -> dict[str, Function]:
        defaults = self.document.get("Globals", {}).get("Function", {})
        shared_env = defaults.get("Environment", {}).get("Variables", {})
        functions = {}
        for name, spec in self.of_type("AWS::Serverless::Function").items():
            properties = spec["Properties"]
            env = dict(shared_env) | dict(properties.get("Environment", {}).get("Variables", {}))
            if properties.get("PackageType") == "Image":
                # The image's command names the handler by its import path from the repository root.
                dotted = properties["ImageConfig"]["Command"][0]
            else:
                # `functions/networks_api/` + `app.handler` → `functions.networks_api.app.handler`
                dotted = properties["CodeUri"].strip("/").replace("/", ".") + "." + properties["Handler"]
            module, attribute = dotted.rsplit(".", 1)
            functions[name] = Function(
                logical_id=name,
                module=module,
                attribute=attribute,
                timeout=int(properties.get("Timeout", defaults.get("Timeout", 3))),
                environment={key: str(self.resolve(value)) for key, value in env.items()},
            )
        return functions

    def routes(self) -> list[Route]:
        routes = []
        for name, spec in self.of_type("AWS::Serverless::Function").items():
            for event in spec["Properties"].get("Events", {}).values():
                if event["Type"] == "Api":
                    routes.append(Route(event["Properties"]["Method"].upper(), event["Properties"]["Path"], name))
        # Literal segments win over parameters, as in API Gateway (`/networks/public` before `/networks/{id}`).
        return sorted(routes, key=lambda route: [part.startswith("{") for part in route.path.split("/")])

    def queue_sources(self) -> list[QueueSource]:
        sources = []
        for name, spec in self.of_type("AWS::Serverless::Function").items():
            for event in spec["Properties"].get("Events", {}).values():
                if event["Type"] == "SQS":
                    properties = event["Properties"]
                    queue_arn = self.resolve(properties["Queue"])
                    sources.append(
                        QueueSource(
                            function=name,
                            queue=queue_arn.rsplit(":", 1)[1],
                            batch_size=int(properties.get("BatchSize", 10)),
                            reports_batch_failures="ReportBatchItemFailures"
                            in properties.get("FunctionResponseTypes", []),
                        )
                    )
        return sources
