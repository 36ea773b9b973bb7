"""The regions Amazon SNS serves, and their hosts, from the endpoint data botocore ships: the
settings check the regions of SNS_TOPIC_ARNS against it, the SNS endpoint the hosts of signing
certificates."""

from __future__ import annotations

from functools import cache
from typing import Final

# The partitions whose SNS hosts sign messages we take: AWS's commercial regions, China and
# GovCloud.
SNS_PARTITIONS: Final = ("aws", "aws-cn", "aws-us-gov")


@cache
def regional_sns_hosts() -> dict[str, str]:
    """Region to SNS host (sns.us-east-1.amazonaws.com, sns.cn-north-1.amazonaws.com.cn, ...) for
    every region of `SNS_PARTITIONS`: no name that merely looks like a region
    (sns.xx-fake-1.amazonaws.com) and nothing else under amazonaws.com (sns.s3.amazonaws.com is
    an S3 bucket anyone can create)."""
    # Imported here: botocore takes a tenth of a second to import, which the settings of `send`
    # and `status`, a person's client, do without unless SNS_TOPIC_ARNS is set.
    import botocore.loaders
    import botocore.regions

    endpoints = botocore.loaders.create_loader().load_data("endpoints")
    resolver = botocore.regions.EndpointResolver(endpoints)
    hosts: dict[str, str] = {}
    for partition in endpoints["partitions"]:
        if partition["partition"] not in SNS_PARTITIONS:
            continue
        for region in partition["regions"]:
            endpoint = resolver.construct_endpoint("sns", region, partition["partition"])
            if endpoint is not None:
                hosts[region] = endpoint["hostname"]
    return hosts


def topic_sns_host(topic_arn: str) -> str | None:
    """The SNS host of the region of `topic_arn` (arn:<partition>:sns:<region>:...), or None."""
    parts = topic_arn.split(":")
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sns":
        return None
    return regional_sns_hosts().get(parts[3])
