"""render() as a pure function: the decisions of the operator, without a cluster."""

from __future__ import annotations

import json

import pytest
from stackyard.config import RuntimeConfig
from stackyard_operator.render import Observed, referenced_secrets, render

STACK = {
    "apiVersion": "stackyard.dev/v1alpha1",
    "kind": "Stack",
    "metadata": {"name": "demo", "namespace": "shop", "uid": "u-1", "generation": 3},
    "spec": {
        "redis": {"urlSecretRef": {"name": "backends", "key": "redis"}},
        "mongodb": {"uriSecretRef": {"name": "backends", "key": "mongodb"}},
    },
}
BACKENDS = {"redis": "redis://:pw@redis:6379/0", "mongodb": "mongodb://mongo/"}


def provider(name: str, secret: str = "resend", priority: int = 10, generation: int = 1) -> dict:
    return {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "EmailProvider",
        "metadata": {"name": name, "namespace": "shop", "generation": generation},
        "spec": {
            "stackRef": {"name": "demo"},
            "type": "resend",
            "priority": priority,
            "resend": {"apiKeySecretRef": {"name": secret, "key": "apiKey"}},
        },
    }


def conditions(desired, kind, name):
    return {c.type: c for c in desired.statuses[(kind, name)].conditions}


def test_same_state_renders_the_same_objects_and_hash():
    observed = Observed(STACK, [provider("resend")], {"backends": BACKENDS, "resend": {"apiKey": "k"}})
    first, second = render(observed), render(observed)
    assert first.objects == second.objects
    assert first.config is not None and first.config.hash == second.config.hash


def test_config_holds_references_and_the_secret_holds_values():
    desired = render(Observed(STACK, [provider("resend")], {"backends": BACKENDS, "resend": {"apiKey": "re_123"}}))
    config_map = next(o for o in desired.objects if o["kind"] == "ConfigMap")
    text = json.dumps(config_map)
    assert "re_123" not in text and "redis://" not in text
    assert desired.credentials["emailprovider.resend.apiKey"] == "re_123"
    assert desired.credentials["stack.redis.url"] == BACKENDS["redis"]
    assert config_map["metadata"]["annotations"]["stackyard.dev/config-hash"] == desired.config.hash


def test_missing_stack_secret_applies_nothing_and_keeps_the_config_in_force():
    previous = render(Observed(STACK, [], {"backends": BACKENDS})).config
    desired = render(Observed(STACK, [provider("resend")], {}, previous_config=previous))
    assert desired.config is None and desired.objects == []
    ready = conditions(desired, "Stack", "demo")["Ready"]
    assert (ready.status, ready.reason) == ("False", "SecretNotFound")
    assert previous.hash in ready.message
    assert conditions(desired, "EmailProvider", "resend")["Ready"].reason == "StackNotReady"


def test_a_stack_that_stops_applying_shows_its_other_conditions_as_unknown():
    good = render(Observed(STACK, [], {"backends": BACKENDS}))
    shown = [{"type": c.type, "status": c.status} for c in good.statuses[("Stack", "demo")].conditions]
    assert {"MembersReady", "AuthReady"} <= {c["type"] for c in shown}
    broken = render(Observed(STACK | {"status": {"conditions": shown}}, [], {}, previous_config=good.config))
    now = conditions(broken, "Stack", "demo")
    assert (now["Ready"].status, now["Ready"].reason) == ("False", "SecretNotFound")
    assert set(now) == {"Ready"} | {c["type"] for c in shown}
    for type_ in set(now) - {"Ready"}:
        assert (now[type_].status, now[type_].reason) == ("Unknown", "NotEvaluated"), type_
    assert "SearchReady" not in now


def test_invalid_member_without_a_previous_version_is_left_out():
    desired = render(Observed(STACK, [provider("resend")], {"backends": BACKENDS}))
    assert desired.config.email_providers == {}
    ready = conditions(desired, "EmailProvider", "resend")["Ready"]
    assert (ready.status, ready.reason, ready.message) == ("False", "SecretNotFound", "Secret resend not found")
    assert conditions(desired, "Stack", "demo")["MembersReady"].status == "False"
    assert conditions(desired, "Stack", "demo")["Ready"].status == "True"


def test_invalid_member_keeps_its_last_good_version_and_credentials():
    good = render(
        Observed(STACK, [provider("resend", priority=10)], {"backends": BACKENDS, "resend": {"apiKey": "k1"}})
    )
    broken = provider("resend", secret="gone", priority=1, generation=2)
    desired = render(
        Observed(
            STACK,
            [broken],
            {"backends": BACKENDS},
            previous_config=good.config,
            previous_credentials=good.credentials,
            previous_credentials_revision=good.credentials_revision,
        )
    )
    assert desired.config.email_providers["resend"].priority == 10
    assert desired.credentials["emailprovider.resend.apiKey"] == "k1"
    ready = conditions(desired, "EmailProvider", "resend")["Ready"]
    assert ready.status == "False" and "last good version stays in force" in ready.message
    assert desired.statuses[("EmailProvider", "resend")].generation == 2


def test_credentials_revision_moves_only_when_the_credentials_change():
    secrets = {"backends": BACKENDS, "resend": {"apiKey": "k1"}}
    first = render(Observed(STACK, [provider("resend")], secrets))
    assert first.credentials_revision == 1
    same = render(
        Observed(
            STACK,
            [provider("resend", priority=3)],
            secrets,
            previous_config=first.config,
            previous_credentials=first.credentials,
            previous_credentials_revision=1,
        )
    )
    assert same.credentials_revision == 1
    changed = render(
        Observed(
            STACK,
            [provider("resend")],
            {**secrets, "resend": {"apiKey": "k2"}},
            previous_config=first.config,
            previous_credentials=first.credentials,
            previous_credentials_revision=1,
        )
    )
    assert changed.credentials_revision == 2
    assert changed.config.hash != first.config.hash


def test_owned_objects_carry_owner_reference_and_restricted_security():
    desired = render(Observed(STACK, [], {"backends": BACKENDS}))
    for obj in desired.objects:
        (owner,) = obj["metadata"]["ownerReferences"]
        assert owner == {
            "apiVersion": "stackyard.dev/v1alpha1",
            "kind": "Stack",
            "name": "demo",
            "uid": "u-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    deployments = [o for o in desired.objects if o["kind"] == "Deployment"]
    assert [d["metadata"]["name"] for d in deployments] == ["demo-api", "demo-worker"]
    for deployment in deployments:
        pod = deployment["spec"]["template"]
        assert "stackyard.dev/config-hash" not in json.dumps(pod), "a config change must not restart pods"
        container = pod["spec"]["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_disabled_provider_is_in_the_config_but_says_so():
    disabled = provider("resend")
    disabled["spec"]["enabled"] = False
    desired = render(Observed(STACK, [disabled], {"backends": BACKENDS, "resend": {"apiKey": "k"}}))
    assert "resend" in desired.config.email_providers
    assert conditions(desired, "EmailProvider", "resend")["Ready"].reason == "Disabled"


def test_availability_follows_ready_replicas():
    observed = Observed(STACK, [], {"backends": BACKENDS}, workloads={"api": {"readyReplicas": 1}})
    available = conditions(render(observed), "Stack", "demo")["Available"]
    assert (available.status, available.message) == ("False", "api 1/2 ready, worker 0/1 ready")
    observed = Observed(
        STACK, [], {"backends": BACKENDS}, workloads={"api": {"readyReplicas": 2}, "worker": {"readyReplicas": 1}}
    )
    assert conditions(render(observed), "Stack", "demo")["Available"].status == "True"


def test_referenced_secrets_are_found_anywhere_in_the_spec():
    assert referenced_secrets(STACK) == {"backends"}
    assert referenced_secrets(provider("resend", secret="s1")) == {"s1"}


def test_runtime_config_round_trips_through_the_config_map():
    desired = render(Observed(STACK, [provider("resend")], {"backends": BACKENDS, "resend": {"apiKey": "k"}}))
    config_map = next(o for o in desired.objects if o["kind"] == "ConfigMap")
    parsed = RuntimeConfig.model_validate_json(config_map["data"]["config.json"])
    assert parsed == desired.config


def job_queue(name: str = "webhooks", generation: int = 1, **spec) -> dict:
    return {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "JobQueue",
        "metadata": {"name": name, "namespace": "shop", "generation": generation},
        "spec": {"stackRef": {"name": "demo"}, **spec},
    }


def schedule(name: str = "nightly", generation: int = 1, **spec) -> dict:
    clock = {} if "interval" in spec else {"cron": "0 3 * * *"}
    return {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "Schedule",
        "metadata": {"name": name, "namespace": "shop", "generation": generation},
        "spec": {"stackRef": {"name": "demo"}, **clock, "job": {"function": "reports.nightly"}, **spec},
    }


SIGNED = {"allowedUrls": ["https://app.example.com/jobs/"], "signingSecretRef": {"name": "jobs", "key": "hmac"}}


def test_job_queues_and_schedules_are_folded_into_the_config():
    members = [job_queue(concurrency=4), job_queue("default", priority=5), schedule(), schedule("tick", interval="30s")]
    desired = render(Observed(STACK, members, {"backends": BACKENDS}))
    assert set(desired.config.job_queues) == {"default", "webhooks"}
    assert desired.config.job_queues["webhooks"].concurrency == 4
    assert desired.config.job_queues["default"].priority == 5
    assert desired.config.schedules["nightly"].cron == "0 3 * * *"
    assert desired.config.schedules["tick"].interval == "30s"
    for kind, name in [("JobQueue", "webhooks"), ("Schedule", "nightly"), ("Schedule", "tick")]:
        ready = conditions(desired, kind, name)["Ready"]
        assert (ready.status, ready.reason) == ("True", "InForce")
    assert desired.stack_status.fields["members"] == {
        "EmailProvider": 0,
        "EmailTemplate": 0,
        "RateLimitPolicy": 0,
        "JobQueue": 2,
        "Schedule": 2,
        "IdentityProvider": 0,
        "Database": 0,
        "Bucket": 0,
        "NotificationWorkflow": 0,
        "Webhook": 0,
        "SearchIndex": 0,
        "OIDCClient": 0,
    }
    config_map = next(o for o in desired.objects if o["kind"] == "ConfigMap")
    data = json.loads(config_map["data"]["config.json"])
    assert data["schedules"]["nightly"]["job"]["function"] == "reports.nightly"
    assert data["jobQueues"]["webhooks"]["retry"]["maxAttempts"] == 5


def test_signing_secret_goes_to_the_credentials_and_only_its_key_to_the_config():
    secrets = {"backends": BACKENDS, "jobs": {"hmac": "whsec_0123456789"}}
    desired = render(Observed(STACK, [job_queue(httpTarget=SIGNED)], secrets))
    assert desired.credentials["jobqueue.webhooks.signingSecret"] == "whsec_0123456789"
    config_map = next(o for o in desired.objects if o["kind"] == "ConfigMap")
    assert "whsec_0123456789" not in json.dumps(config_map)
    assert desired.config.job_queues["webhooks"].http_target.signing_secret_ref.name == "jobs"
    assert referenced_secrets(job_queue(httpTarget=SIGNED)) == {"jobs"}


def test_queue_with_a_missing_signing_secret_is_not_ready_and_the_rest_stays():
    desired = render(Observed(STACK, [job_queue(httpTarget=SIGNED), job_queue("emails")], {"backends": BACKENDS}))
    ready = conditions(desired, "JobQueue", "webhooks")["Ready"]
    assert (ready.status, ready.reason, ready.message) == ("False", "SecretNotFound", "Secret jobs not found")
    assert set(desired.config.job_queues) == {"emails"}
    assert conditions(desired, "Stack", "demo")["MembersReady"].message == "JobQueue webhooks: SecretNotFound"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"cron": "0 25 * * *"}, "spec.cron: invalid cron expression '0 25 * * *'"),
        ({"cron": "0 0 * * * *"}, "spec.cron: cron expression '0 0 * * * *' has 6 fields, not 5"),
        ({"timeZone": "Mars/Olympus_Mons"}, "spec.timeZone: unknown time zone 'Mars/Olympus_Mons'"),
    ],
)
def test_invalid_schedule_is_not_ready_with_the_reason_and_the_rest_stays_in_force(spec, message):
    members = [schedule("broken", **spec), schedule("nightly"), job_queue()]
    desired = render(Observed(STACK, members, {"backends": BACKENDS}))
    ready = conditions(desired, "Schedule", "broken")["Ready"]
    assert (ready.status, ready.reason) == ("False", "Invalid")
    assert ready.message.startswith(message), ready.message
    assert set(desired.config.schedules) == {"nightly"} and set(desired.config.job_queues) == {"webhooks"}
    assert conditions(desired, "Stack", "demo")["Ready"].status == "True"


def test_broken_schedule_edit_keeps_the_last_good_version():
    good = render(Observed(STACK, [schedule()], {"backends": BACKENDS}))
    desired = render(
        Observed(
            STACK, [schedule(cron="@sometimes", generation=2)], {"backends": BACKENDS}, previous_config=good.config
        )
    )
    assert desired.config.schedules["nightly"].cron == "0 3 * * *"
    ready = conditions(desired, "Schedule", "nightly")["Ready"]
    assert "unknown cron alias '@sometimes'" in ready.message and "last good version stays in force" in ready.message


def test_paused_queue_and_schedule_are_in_force_and_say_so():
    desired = render(Observed(STACK, [job_queue(paused=True), schedule(paused=True)], {"backends": BACKENDS}))
    for kind, name in [("JobQueue", "webhooks"), ("Schedule", "nightly")]:
        ready = conditions(desired, kind, name)["Ready"]
        assert (ready.status, ready.reason) == ("True", "Paused")
    assert desired.config.job_queues["webhooks"].paused and desired.config.schedules["nightly"].paused


def test_runtime_role_lets_the_worker_record_status_and_the_api_read_its_own_stack_and_nothing_more():
    desired = render(Observed(STACK, [], {"backends": BACKENDS}))
    role = next(o for o in desired.objects if o["kind"] == "Role")
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): r for r in role["rules"]}
    statuses = (
        "schedules/status",
        "emailproviders/status",
        "databases/status",
        "buckets/status",
        "webhooks/status",
        "searchindexes/status",
    )
    assert rules[(("stackyard.dev",), statuses)]["verbs"] == ["get", "patch"]
    stacks = rules[(("stackyard.dev",), ("stacks",))]
    assert stacks["verbs"] == ["get"] and stacks["resourceNames"] == ["demo"]
    assert all("resourceNames" in r for r in role["rules"] if r["apiGroups"] == [""])
    assert {v for r in role["rules"] for v in r["verbs"]} == {"get", "list", "watch", "patch"}


def test_the_worker_gives_running_jobs_most_of_its_termination_grace_period():
    desired = render(Observed(STACK, [], {"backends": BACKENDS}))
    worker = next(o for o in desired.objects if o["metadata"]["name"] == "demo-worker")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in worker["containers"][0]["env"]}
    grace = worker["terminationGracePeriodSeconds"]
    assert 0 < grace - int(env["STACKYARD_SHUTDOWN_GRACE"]) <= 15, "jobs still running are given back before SIGKILL"


def email_template(name: str = "welcome", generation: int = 1, **spec) -> dict:
    return {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "EmailTemplate",
        "metadata": {"name": name, "namespace": "shop", "generation": generation},
        "spec": {
            "stackRef": {"name": "demo"},
            "subject": "Welcome, {{ name }}",
            "html": "<p>Hello {{ name }}</p>",
            "variables": {"name": {}},
            **spec,
        },
    }


def test_email_templates_are_folded_into_the_config():
    french = {"fr": {"subject": "Bienvenue, {{ name }}"}}
    desired = render(Observed(STACK, [email_template(locales=french)], {"backends": BACKENDS}))
    assert desired.config.email_templates["welcome"].locales["fr"].subject == "Bienvenue, {{ name }}"
    ready = conditions(desired, "EmailTemplate", "welcome")["Ready"]
    assert (ready.status, ready.reason) == ("True", "InForce")
    assert desired.stack_status.fields["members"]["EmailTemplate"] == 1
    config_map = next(o for o in desired.objects if o["kind"] == "ConfigMap")
    assert json.loads(config_map["data"]["config.json"])["emailTemplates"]["welcome"]["defaultLocale"] == "en"


def test_broken_email_template_is_not_ready_with_the_line_and_the_rest_stays_in_force():
    broken = email_template("receipt", locales={"fr": {"html": "<p>Bonjour</p>\n<p>\n{{ name ) }}"}})
    desired = render(Observed(STACK, [broken, email_template(), job_queue()], {"backends": BACKENDS}))
    ready = conditions(desired, "EmailTemplate", "receipt")["Ready"]
    assert (ready.status, ready.reason) == ("False", "Invalid")
    assert ready.message.startswith("spec: html (fr), line 3: "), ready.message
    assert set(desired.config.email_templates) == {"welcome"} and set(desired.config.job_queues) == {"webhooks"}
    assert conditions(desired, "Stack", "demo")["Ready"].status == "True"
    assert conditions(desired, "Stack", "demo")["MembersReady"].message == "EmailTemplate receipt: Invalid"


def test_broken_email_template_edit_keeps_the_last_good_version():
    good = render(Observed(STACK, [email_template()], {"backends": BACKENDS}))
    edit = email_template(generation=2, subject="Welcome, {{ nmae }}")
    desired = render(Observed(STACK, [edit], {"backends": BACKENDS}, previous_config=good.config))
    assert desired.config.email_templates["welcome"].subject == "Welcome, {{ name }}"
    ready = conditions(desired, "EmailTemplate", "welcome")["Ready"]
    assert ready.status == "False" and ready.message == (
        "spec: subject, line 1: variable 'nmae' is not declared (declared: name); the last good version stays in force"
    )


def identity_provider(name: str = "github", generation: int = 1, **spec) -> dict:
    return {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "IdentityProvider",
        "metadata": {"name": name, "namespace": "shop", "generation": generation},
        "spec": {
            "stackRef": {"name": "demo"},
            "type": "github",
            "clientId": "Iv1.0123",
            "clientSecretSecretRef": {"name": "github-oauth", "key": "secret"},
        }
        | spec,
    }


def test_identity_provider_client_secret_goes_to_the_credentials_and_only_its_reference_to_the_config():
    secrets = {"backends": BACKENDS, "github-oauth": {"secret": "gh-client-secret"}}
    desired = render(Observed(STACK, [identity_provider()], secrets))
    assert desired.credentials["identityprovider.github.clientSecret"] == "gh-client-secret"
    assert desired.config.identity_providers["github"].client_id == "Iv1.0123"
    config_map = next(o for o in desired.objects if o["kind"] == "ConfigMap")
    assert "gh-client-secret" not in json.dumps(config_map)
    assert conditions(desired, "IdentityProvider", "github")["Ready"].reason == "InForce"
    assert desired.stack_status.fields["members"]["IdentityProvider"] == 1


def test_identity_provider_without_its_secret_is_not_ready_and_left_out():
    desired = render(Observed(STACK, [identity_provider()], {"backends": BACKENDS}))
    ready = conditions(desired, "IdentityProvider", "github")["Ready"]
    assert (ready.status, ready.reason) == ("False", "SecretNotFound")
    assert "github" not in desired.config.identity_providers


def test_oidc_identity_provider_without_an_issuer_is_invalid():
    secrets = {"backends": BACKENDS, "github-oauth": {"secret": "s"}}
    desired = render(Observed(STACK, [identity_provider("corp", type="oidc")], secrets))
    ready = conditions(desired, "IdentityProvider", "corp")["Ready"]
    assert (ready.status, ready.reason) == ("False", "Invalid")
    assert "issuer" in ready.message
