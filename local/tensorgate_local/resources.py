"""Creates the tables, bucket, queues and S3→SQS notifications of `template.yaml` in the embedded AWS."""

from __future__ import annotations

from typing import Any

from tensorgate_local.template import Template

# Table properties the DynamoDB CreateTable call takes as they are written in the template.
_TABLE_KEYS = (
    "AttributeDefinitions",
    "KeySchema",
    "BillingMode",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
)
# CloudFormation's queue properties and their SetQueueAttributes names.
_QUEUE_ATTRIBUTES = {
    "VisibilityTimeout": "VisibilityTimeout",
    "MessageRetentionPeriod": "MessageRetentionPeriod",
    "DelaySeconds": "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds": "ReceiveMessageWaitTimeSeconds",
    "MaximumMessageSize": "MaximumMessageSize",
}


def create_all(template: Template, session: Any) -> dict[str, list[str]]:
    """Create every resource; returns what was created, by kind, for the startup banner."""
    created: dict[str, list[str]] = {"tables": [], "queues": [], "buckets": []}
    dynamodb = session.client("dynamodb")
    for name, spec in template.of_type("AWS::DynamoDB::Table").items():
        properties = template.resolve(spec["Properties"])
        arguments = {key: properties[key] for key in _TABLE_KEYS if key in properties}
        dynamodb.create_table(TableName=template.physical_name(name), **arguments)
        ttl = properties.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            dynamodb.update_time_to_live(
                TableName=template.physical_name(name),
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
        created["tables"].append(name)

    sqs = session.client("sqs")
    queues = template.of_type("AWS::SQS::Queue")
    # Dead-letter queues first: a redrive policy names an existing queue.
    ordered = sorted(queues, key=lambda name: "RedrivePolicy" in queues[name].get("Properties", {}))
    for name in ordered:
        properties = template.resolve(queues[name].get("Properties", {}))
        attributes = {
            target: str(properties[source]) for source, target in _QUEUE_ATTRIBUTES.items() if source in properties
        }
        if "RedrivePolicy" in properties:
            redrive = properties["RedrivePolicy"]
            attributes["RedrivePolicy"] = (
                f'{{"deadLetterTargetArn":"{redrive["deadLetterTargetArn"]}",'
                f'"maxReceiveCount":"{redrive["maxReceiveCount"]}"}}'
            )
        sqs.create_queue(QueueName=template.physical_name(name), Attributes=attributes)
        created["queues"].append(name)

    s3 = session.client("s3")
    for name, spec in template.of_type("AWS::S3::Bucket").items():
        bucket = template.physical_name(name)
        properties = template.resolve(spec["Properties"])
        s3.create_bucket(Bucket=bucket)
        notifications = properties.get("NotificationConfiguration", {}).get("QueueConfigurations", [])
        if notifications:
            s3.put_bucket_notification_configuration(
                Bucket=bucket,
                NotificationConfiguration={"QueueConfigurations": [_queue_notification(n) for n in notifications]},
            )
        created["buckets"].append(bucket)
    return created


def _queue_notification(configuration: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's QueueConfiguration shape → the S3 API's."""
    rules = configuration.get("Filter", {}).get("S3Key", {}).get("Rules", [])
    converted: dict[str, Any] = {"QueueArn": configuration["Queue"], "Events": [configuration["Event"]]}
    if rules:
        converted["Filter"] = {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}}
    return converted
