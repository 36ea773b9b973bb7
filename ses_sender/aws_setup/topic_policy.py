"""The SNS topic policy statement that lets SES publish a configuration set's events.

SES publishes to the topic as the service `ses.amazonaws.com`, which the topic's default policy
does not name, so the topic must grant it. The statement is limited to our account and our
configuration set (AWS:SourceAccount, AWS:SourceArn), as the SES developer guide suggests.
"""

from __future__ import annotations

import json
from typing import Any, Final

SES_PRINCIPAL: Final = "ses.amazonaws.com"
STATEMENT_ID: Final = "AllowSesPublish"
_POLICY_VERSION: Final = "2008-10-17"


def configuration_set_arn(topic_arn: str, configuration_set: str) -> str:
    """The configuration set's ARN, in the topic's partition, region and account."""
    _arn, partition, _service, region, account, _name = topic_arn.split(":", 5)
    return f"arn:{partition}:ses:{region}:{account}:configuration-set/{configuration_set}"


def ses_statement(topic_arn: str, configuration_set: str) -> dict[str, Any]:
    account = topic_arn.split(":", 5)[4]
    return {
        "Sid": STATEMENT_ID,
        "Effect": "Allow",
        "Principal": {"Service": SES_PRINCIPAL},
        "Action": "SNS:Publish",
        "Resource": topic_arn,
        "Condition": {
            "StringEquals": {
                "AWS:SourceAccount": account,
                "AWS:SourceArn": configuration_set_arn(topic_arn, configuration_set),
            }
        },
    }


def ses_may_publish(policy: str | None, topic_arn: str, configuration_set: str) -> bool:
    """Whether some statement of `policy` (a JSON document) lets SES publish our events."""
    source_arn = configuration_set_arn(topic_arn, configuration_set)
    return any(_allows_ses(statement, source_arn) for statement in _statements(_parse(policy)))


def with_ses_statement(policy: str | None, topic_arn: str, configuration_set: str) -> str:
    """`policy` with our statement in place of any earlier one of ours; the rest kept."""
    document = _parse(policy) or {"Version": _POLICY_VERSION, "Statement": []}
    kept = [s for s in _statements(document) if s.get("Sid") != STATEMENT_ID]
    document["Statement"] = [*kept, ses_statement(topic_arn, configuration_set)]
    return json.dumps(document, separators=(",", ":"))


def _parse(policy: str | None) -> dict[str, Any] | None:
    if not policy:
        return None
    try:
        document = json.loads(policy)
    except json.JSONDecodeError:
        return None
    return document if isinstance(document, dict) else None


def _statements(document: dict[str, Any] | None) -> list[dict[str, Any]]:
    if document is None:
        return []
    statements = document.get("Statement", [])
    if isinstance(statements, dict):  # a policy may hold a single statement as an object
        statements = [statements]
    return [s for s in statements if isinstance(s, dict)]


def _allows_ses(statement: dict[str, Any], source_arn: str) -> bool:
    principal = statement.get("Principal")
    services = principal.get("Service") if isinstance(principal, dict) else None
    actions = {action.lower() for action in _as_list(statement.get("Action"))}
    return (
        statement.get("Effect") == "Allow"
        and SES_PRINCIPAL in _as_list(services)
        and bool(actions & {"sns:publish", "sns:*", "*"})
        and _source_arn_allows(statement.get("Condition"), source_arn)
    )


def _source_arn_allows(condition: Any, source_arn: str) -> bool:
    """No AWS:SourceArn condition, or one naming our configuration set (keys ignore case)."""
    if not isinstance(condition, dict):
        return True
    for operator in condition.values():
        if not isinstance(operator, dict):
            continue
        for key, value in operator.items():
            if key.lower() == "aws:sourcearn" and source_arn not in _as_list(value):
                return False
    return True


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
