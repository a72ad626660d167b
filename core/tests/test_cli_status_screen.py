"""The pure parts of `stackyard status` (stackyard.cli.status), with plain data: the printer
columns' JSONPaths read out of a resource, URLs without user info, the api's config hash
flagged when it is not the Stack's, a member that is not Ready shown with its message, and
orphans. The command itself runs against the make-up stack in tests/docs/test_cli_status.py."""

from __future__ import annotations

from stackyard.cli.output import plain
from stackyard.cli.status import ApiView, Member, StackView, camel, json_path, members_table, orphans_table, shown
from stackyard.cli.status import stack_table as stack_view_table
from stackyard.resources.registry import KINDS

READY = {"type": "Ready", "status": "True", "reason": "InForce", "message": "in force in Stack demo"}
NOT_READY = {"type": "Ready", "status": "False", "reason": "TemplateNotFound", "message": "no EmailTemplate welcome"}


def resource() -> dict[str, object]:
    return {
        "metadata": {"name": "welcome", "creationTimestamp": "2026-11-26T19:22:02Z"},
        "spec": {"type": "resend", "steps": [{"name": "feed"}, {"name": "email"}], "backend": {}},
        "status": {
            "documents": 4,
            "conditions": [{"type": "Reachable", "status": "False", "reason": "Timeout"}, READY],
            "breaker": {"state": "open"},
        },
    }


def test_json_path_reads_the_printer_columns_subset():
    item = resource()
    assert json_path(item, '.status.conditions[?(@.type=="Ready")].status') == "True"
    assert json_path(item, '.status.conditions[?(@.type=="Reachable")].reason') == "Timeout"
    assert json_path(item, '.status.conditions[?(@.type=="Enabled")].status') is None
    assert json_path(item, ".status.documents") == 4
    assert json_path(item, ".status.breaker.state") == "open"
    assert json_path(item, ".spec.steps[*].name") == ["feed", "email"]
    assert json_path(item, ".spec.backend.s3.bucket") is None


def test_every_kinds_printer_columns_are_read_without_error():
    for kind in KINDS:
        for column in kind.info.columns:
            json_path(resource(), column.json_path)
            assert camel(column.name)[0].islower()
    assert camel("Default Locale") == "defaultLocale" and camel("URL") == "url"


def test_urls_are_shown_without_user_info():
    assert shown("https://bot:s3cret@hooks.example.com/x?y=1") == "https://hooks.example.com/x?y=1"
    assert shown(["redis://:pw@redis:6379/0", 4]) == ["redis://redis:6379/0", 4]


def stack(config_hash: str = "aaaa", members: list[Member] | None = None) -> StackView:
    return StackView("demo", "default", 3, 3, config_hash, [READY], members or [])


def api(config_hash: str, stack_name: str = "demo") -> ApiView:
    return ApiView("http://api", config={"hash": config_hash, "stack": stack_name, "namespace": "default"})


def test_the_apis_hash_is_flagged_when_it_is_not_the_stacks():
    assert "aaaa (in sync)" in plain(stack_view_table(stack("aaaa"), api("aaaa")))
    assert stack("aaaa").as_json(api("aaaa"))["configInSync"] is True
    differs = plain(stack_view_table(stack("aaaa"), api("bbbb")))
    assert "bbbb DIFFERS from the Stack's" in differs
    assert stack("aaaa").as_json(api("bbbb"))["configInSync"] is False
    other = stack("aaaa").as_json(api("bbbb", stack_name="shop"))
    assert other["configInSync"] is None and other["apiConfigHash"] is None
    unreachable = ApiView("http://api", error="cannot reach", exit_code=3)
    assert stack().as_json(unreachable)["configInSync"] is None
    assert unreachable.as_json()["reachable"] is False


def test_a_member_not_ready_shows_its_message_and_orphans_their_stack_ref():
    members = [
        Member("EmailTemplate", "welcome", [READY], {"defaultLocale": "en"}),
        Member("NotificationWorkflow", "welcome", [NOT_READY], {"key": "welcome"}),
    ]
    lines = plain(members_table(stack(members=members))).splitlines()
    assert lines[2].split()[:5] == ["EmailTemplate", "welcome", "True", "InForce", "defaultLocale=en"]
    assert lines[2].endswith("  -")
    assert lines[3].endswith("no EmailTemplate welcome")
    orphan = Member("Bucket", "media", [NOT_READY], {}, stack_ref="shop")
    assert plain(orphans_table([orphan])).splitlines()[2].split()[:4] == ["Bucket", "media", "shop", "False"]
