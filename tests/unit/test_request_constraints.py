"""AWS's answer to request members outside the API's enums and ranges (no sandbox needed):
the message form, and Cloud Map's DnsRecords checked with it."""

from __future__ import annotations

from typing import Any

import pytest
from moto.servicediscovery.exceptions import InvalidInput

from labkit.sandbox.validation.cloudmap import check_dns_records
from labkit.sandbox.validation.constraints import detected, enum_violation, range_violation


def test_a_value_outside_the_range_is_named_with_its_path_and_bound() -> None:
    assert range_violation("70000", "targets.1.member.port", 1, 65535) == (
        "Value '70000' at 'targets.1.member.port' failed to satisfy constraint: "
        "Member must have value less than or equal to 65535"
    )
    assert range_violation(0, "port", 1, 65535) == (
        "Value '0' at 'port' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1"
    )


@pytest.mark.parametrize("value", [1, 65535, "8080", None, "abc", True])
def test_values_in_range_absent_or_not_numbers_are_left_alone(value: Any) -> None:
    assert range_violation(value, "port", 1, 65535) is None


def test_an_enum_is_exact_and_lists_what_it_allows() -> None:
    assert enum_violation("SRV", "type", ("SRV", "A")) is None
    assert enum_violation("srv", "type", ("SRV", "A")) == (
        "Value 'srv' at 'type' failed to satisfy constraint: "
        "Member must satisfy enum value set: [SRV, A]"
    )


def test_violations_are_counted_and_joined() -> None:
    assert detected([None, None]) is None
    assert detected(["A", None]) == "1 validation error detected: A"
    assert detected(["A", "B"]) == "2 validation errors detected: A; B"


def records_refusal(records: list[dict[str, Any]], path: str = "dnsConfig") -> str:
    with pytest.raises(InvalidInput) as caught:
        check_dns_records({"RoutingPolicy": "MULTIVALUE", "DnsRecords": records}, path)
    return caught.value.message


def test_cloud_map_dns_records_outside_the_api_are_refused() -> None:
    assert records_refusal([{"Type": "SRV", "TTL": 10}, {"Type": "MX", "TTL": 10}]) == (
        "1 validation error detected: Value 'MX' at 'dnsConfig.dnsRecords.2.member.type' "
        "failed to satisfy constraint: Member must satisfy enum value set: [SRV, A, AAAA, CNAME]"
    )
    message = records_refusal([{"Type": "MX", "TTL": 2147483648}], "service.dnsConfig")
    assert message.startswith("2 validation errors detected: ")
    assert (
        "Value '2147483648' at 'service.dnsConfig.dnsRecords.1.member.tTL' failed to satisfy "
        "constraint: Member must have value less than or equal to 2147483647" in message
    )


@pytest.mark.parametrize(
    "records", [[{"Type": t, "TTL": 0} for t in ("SRV", "A", "AAAA", "CNAME")]]
)
def test_cloud_map_dns_records_inside_the_api_pass(records: list[dict[str, Any]]) -> None:
    check_dns_records({"DnsRecords": records + [{"Type": "SRV", "TTL": 2147483647}]}, "dnsConfig")
    check_dns_records(None, "dnsConfig")
