"""The Database model refuses what the driver would refuse later, with the same words as the
CRD's CEL rules (the operator reports them as Ready=False/Invalid)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from stackyard.resources import DatabaseSpec

BASE = {"stackRef": {"name": "demo"}, "connection": {"uriSecretRef": {"name": "m", "key": "uri"}}}


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"client": {"maxStaleness": "120s"}}, "maxStaleness needs a readPreference other than primary"),
        ({"client": {"maxStaleness": "30s", "readPreference": "nearest"}}, "maxStaleness must be at least 90s"),
        ({"client": {"writeConcern": {"w": "0", "journal": True}}}, "journal cannot be true with w 0"),
        ({"pool": {"maxPoolSize": 5, "minPoolSize": 6}}, "minPoolSize must not exceed maxPoolSize"),
        ({"migrations": {"version": 1}}, "exactly one of migrations.configMapRef and migrations.module"),
        (
            {"indexes": [{"collection": "c", "keys": [{"field": "a"}, {"field": "b"}], "expireAfter": "1h"}]},
            "a TTL index (expireAfter) has exactly one key",
        ),
        ({"backup": {"schedule": "every day", "volume": {"claimName": "b"}}}, "cron"),
    ],
)
def test_inconsistent_settings_are_refused_saying_why(section, message):
    with pytest.raises(ValidationError) as refused:
        DatabaseSpec.model_validate(BASE | section)
    assert message in str(refused.value)


def test_consistent_settings_are_accepted_with_their_defaults():
    spec = DatabaseSpec.model_validate(
        BASE
        | {
            "client": {"maxStaleness": "120s", "readPreference": "secondaryPreferred", "writeConcern": {"w": "2"}},
            "backup": {"schedule": "0 3 * * *", "volume": {"claimName": "b"}},
        }
    )
    assert spec.pool.max_pool_size == 100 and spec.index_policy == "enforce"
    assert spec.backup is not None and spec.backup.retention.keep_last == 7
    assert spec.secret_refs() == {"uri": spec.connection.uri_secret_ref}
