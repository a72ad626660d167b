"""TOTP two-factor authentication, recovery codes and passkeys through HTTP against the real
api app, with real Redis and FerretDB. Passkeys are made and used by the harness's software
authenticator (a browser and a platform authenticator in one), verified by the api with
py_webauthn. No worker runs: these flows send no email (sign-up logs in at once)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest
from auth_http import EMAIL, PASSWORD, bearer, login, sign_up_and_log_in
from stackyard_harness.auth_stack import APP_URL, AuthStack
from stackyard_harness.webauthn_authenticator import SoftwareAuthenticator

MAX_FAILURES = 4
REDIS_DATABASE = 9
AUTH_SETTINGS = {"requireEmailVerification": False, "lockout": {"maxFailures": MAX_FAILURES}}


@pytest.fixture
def events(db: Any) -> Any:
    return db["auth_events"]


class Account:
    """A signed-up user with a session: `headers` authorise as them."""

    def __init__(self, http: httpx.Client, email: str = EMAIL) -> None:
        self.http, self.email = http, email
        self.session = sign_up_and_log_in(http, email)
        self.secret = ""

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.session)

    def enroll(self) -> dict[str, Any]:
        answer = self.http.post("/v1/auth/mfa/totp/enroll", headers=self.headers)
        assert answer.status_code == 200, answer.text
        self.secret = answer.json()["secret"]
        return answer.json()

    def code(self, steps: int = 0) -> str:
        """The code an authenticator app shows `steps` steps from now (pyotp, explicit time)."""
        return pyotp.TOTP(self.secret).at(time.time() + 30 * steps)

    def turn_on_mfa(self, steps: int = 0) -> list[str]:
        self.enroll()
        answer = self.http.post("/v1/auth/mfa/totp/confirm", headers=self.headers, json={"code": self.code(steps)})
        assert answer.status_code == 200, answer.text
        return answer.json()["recoveryCodes"]

    def login(self) -> dict[str, Any]:
        return login(self.http, self.email)

    def second_step(self, code: str) -> httpx.Response:
        challenge = self.login()
        assert challenge["mfaRequired"] is True, challenge
        return self.http.post("/v1/auth/login/mfa", json={"mfaToken": challenge["mfaToken"], "code": code})

    def me(self, session: dict[str, Any]) -> dict[str, Any]:
        answer = self.http.get("/v1/auth/me", headers=bearer(session))
        assert answer.status_code == 200, answer.text
        return answer.json()


def away_from_step_edges(margin: float = 6.0) -> None:
    """Wait, if needed, until the current 30 s step has `margin` seconds left, so that the step
    the test reads with time.time() is still the server's step when its requests arrive."""
    left = 30 - time.time() % 30
    if left < margin:
        time.sleep(left + 0.05)


def event_types(events: Any, user_id: str | None = None) -> list[str]:
    query = {"userId": user_id} if user_id else {}
    return [e["type"] for e in events.find(query).sort("_id", 1)]


# --- TOTP -----------------------------------------------------------------------------------


def test_enrol_confirm_then_login_needs_the_second_step(auth: AuthStack, http: httpx.Client, events: Any) -> None:
    away_from_step_edges()
    ana = Account(http)
    enrollment = ana.enroll()
    uri = urlsplit(enrollment["otpauthUri"])
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert parse_qs(uri.query)["secret"] == [ana.secret] and parse_qs(uri.query)["issuer"] == ["auth.acme.dev"]
    assert (enrollment["digits"], enrollment["period"], enrollment["algorithm"]) == (6, 30, "SHA1")
    not_yet = ana.login()
    assert "accessToken" in not_yet, "MFA is not on before the enrolment is confirmed"

    confirmed = http.post("/v1/auth/mfa/totp/confirm", headers=ana.headers, json={"code": ana.code()})
    assert confirmed.status_code == 200, confirmed.text
    codes = confirmed.json()["recoveryCodes"]
    assert len(codes) == len(set(codes)) == 10
    assert http.get("/v1/auth/user", headers=ana.headers).json()["mfaEnabled"] is True

    challenge = ana.login()
    assert challenge["mfaRequired"] is True and "accessToken" not in challenge
    assert challenge["mfaToken"] and challenge["expiresIn"] == 300
    finished = http.post("/v1/auth/login/mfa", json={"mfaToken": challenge["mfaToken"], "code": ana.code(+1)})
    assert finished.status_code == 200, finished.text
    assert ana.me(finished.json())["amr"] == ["pwd", "otp"]
    user_id = ana.me(finished.json())["id"]
    assert "mfa.enabled" in event_types(events, user_id)

    stored = events.database["users"].find_one({"_id": user_id})
    assert ana.secret not in str(stored), "the secret is stored encrypted"
    assert not any(c in str(stored) for c in codes), "recovery codes are stored hashed"


def test_a_wrong_code_is_refused_and_counts_toward_lockout(auth: AuthStack, http: httpx.Client, events: Any) -> None:
    away_from_step_edges()
    ana = Account(http)
    ana.turn_on_mfa()
    challenge = ana.login()
    wrong = f"{(int(ana.code(+1)) + 1) % 1_000_000:06d}"
    refused = http.post("/v1/auth/login/mfa", json={"mfaToken": challenge["mfaToken"], "code": wrong})
    assert refused.status_code == 401, refused.text
    assert refused.json()["type"].endswith("/invalid-credentials")
    assert "mfa.failed" in event_types(events)
    for _ in range(MAX_FAILURES - 1):
        http.post("/v1/auth/login/mfa", json={"mfaToken": challenge["mfaToken"], "code": wrong})
    locked = http.post("/v1/auth/login/mfa", json={"mfaToken": challenge["mfaToken"], "code": ana.code(+1)})
    assert locked.status_code == 429, locked.text
    assert int(locked.headers["Retry-After"]) > 0


def test_codes_two_steps_away_are_refused_and_the_next_step_is_accepted(auth: AuthStack, http: httpx.Client) -> None:
    away_from_step_edges()
    ana = Account(http)
    ana.turn_on_mfa()
    for steps in (-2, +2):
        refused = ana.second_step(ana.code(steps))
        assert refused.status_code == 401, f"a code {steps} steps away: {refused.text}"
    accepted = ana.second_step(ana.code(+1))
    assert accepted.status_code == 200, accepted.text


def test_a_code_of_the_previous_step_is_accepted(auth: AuthStack, http: httpx.Client) -> None:
    away_from_step_edges()
    ana = Account(http)
    ana.enroll()
    # Confirmation takes the previous step's code (the app's clock 30 s behind) ...
    confirmed = http.post("/v1/auth/mfa/totp/confirm", headers=ana.headers, json={"code": ana.code(-1)})
    assert confirmed.status_code == 200, confirmed.text
    # ... and then the current one; the previous one again is a replay.
    assert ana.second_step(ana.code(0)).status_code == 200
    assert ana.second_step(ana.code(-1)).status_code == 401


def test_a_used_code_is_refused_the_second_time(auth: AuthStack, http: httpx.Client) -> None:
    away_from_step_edges()
    ana = Account(http)
    ana.turn_on_mfa()
    code = ana.code(+1)
    assert ana.second_step(code).status_code == 200
    again = ana.second_step(code)
    assert again.status_code == 401, "a code works once, even inside its window"
    also_current = ana.second_step(ana.code(0))
    assert also_current.status_code == 401, "a step before the last used one is refused too"


def test_the_mfa_challenge_is_spent_by_a_successful_second_step(auth: AuthStack, http: httpx.Client) -> None:
    away_from_step_edges()
    ana = Account(http)
    codes = ana.turn_on_mfa()
    challenge = ana.login()
    first = http.post("/v1/auth/login/mfa", json={"mfaToken": challenge["mfaToken"], "code": ana.code(+1)})
    assert first.status_code == 200
    reused = http.post("/v1/auth/login/mfa", json={"mfaToken": challenge["mfaToken"], "code": codes[0]})
    assert reused.status_code == 401 and reused.json()["type"].endswith("/invalid-token")


def test_a_recovery_code_works_once(auth: AuthStack, http: httpx.Client, events: Any) -> None:
    ana = Account(http)
    codes = ana.turn_on_mfa()
    typed = codes[3].upper().replace("-", " ")  # as a person might type it
    accepted = ana.second_step(typed)
    assert accepted.status_code == 200, accepted.text
    assert ana.me(accepted.json())["amr"] == ["pwd", "rcode"]
    assert ana.second_step(codes[3]).status_code == 401, "a recovery code is single use"
    assert ana.second_step(codes[4]).status_code == 200, "the others still work"


def test_new_recovery_codes_replace_the_old_ones(auth: AuthStack, http: httpx.Client) -> None:
    ana = Account(http)
    old = ana.turn_on_mfa()
    refused = http.post("/v1/auth/mfa/recovery-codes", headers=ana.headers, json={"password": "not it at all"})
    assert refused.status_code == 422 and refused.json()["type"].endswith("/invalid-mfa-code")
    answer = http.post("/v1/auth/mfa/recovery-codes", headers=ana.headers, json={"password": PASSWORD})
    assert answer.status_code == 200, answer.text
    new = answer.json()["recoveryCodes"]
    assert len(new) == 10 and not set(new) & set(old)
    assert ana.second_step(old[0]).status_code == 401
    assert ana.second_step(new[0]).status_code == 200


def test_disable_needs_a_code_or_the_password_then_login_is_one_step(
    auth: AuthStack, http: httpx.Client, events: Any
) -> None:
    away_from_step_edges()
    ana = Account(http)
    ana.turn_on_mfa()
    no_proof = http.request("DELETE", "/v1/auth/mfa/totp", headers=ana.headers, json={})
    assert no_proof.status_code == 422
    wrong = http.request("DELETE", "/v1/auth/mfa/totp", headers=ana.headers, json={"code": "000000"})
    assert wrong.status_code == 422 and wrong.json()["type"].endswith("/invalid-mfa-code")
    done = http.request("DELETE", "/v1/auth/mfa/totp", headers=ana.headers, json={"code": ana.code(+1)})
    assert done.status_code == 204, done.text
    session = ana.login()
    assert "accessToken" in session and ana.me(session)["amr"] == ["pwd"]
    types = event_types(events, ana.me(session)["id"])
    assert types.index("mfa.enabled") < types.index("mfa.failed") < types.index("mfa.disabled")
    off_again = http.request("DELETE", "/v1/auth/mfa/totp", headers=ana.headers, json={"password": PASSWORD})
    assert off_again.status_code == 409


def test_confirm_with_a_wrong_code_leaves_mfa_off(auth: AuthStack, http: httpx.Client) -> None:
    ana = Account(http)
    ana.enroll()
    wrong = http.post("/v1/auth/mfa/totp/confirm", headers=ana.headers, json={"code": "12345x"})
    assert wrong.status_code == 422
    assert http.get("/v1/auth/user", headers=ana.headers).json()["mfaEnabled"] is False
    unauthenticated = http.post("/v1/auth/mfa/totp/enroll")
    assert unauthenticated.status_code == 401


def test_enrolment_without_an_encryption_key_is_a_clear_503(auth: AuthStack, http: httpx.Client) -> None:
    key = auth.credentials["stack.auth.encryptionKey"]
    auth.configure(
        {"requireEmailVerification": False}, extra_credentials={"stack.auth.encryptionKey": ""}, fresh_database=False
    )
    try:
        ana = Account(http)
        answer = http.post("/v1/auth/mfa/totp/enroll", headers=ana.headers)
        assert answer.status_code == 503, answer.text
        assert answer.json()["type"].endswith("/auth-not-configured")
        assert "encryption key" in answer.json()["detail"]
    finally:
        auth.configure({"requireEmailVerification": False}, extra_credentials={"stack.auth.encryptionKey": key})


# --- passkeys -------------------------------------------------------------------------------


def register_passkey(
    http: httpx.Client, account: Account, device: SoftwareAuthenticator, **fault: Any
) -> httpx.Response:
    options = http.post("/v1/auth/passkeys/register/options", headers=account.headers)
    assert options.status_code == 200, options.text
    body = options.json()
    credential = device.register(body["publicKey"], **fault)
    return http.post(
        "/v1/auth/passkeys/register/verify",
        headers=account.headers,
        json={"challengeToken": body["challengeToken"], "credential": credential, "name": "Test laptop"},
    )


def passkey_options(http: httpx.Client, email: str | None = None) -> dict[str, Any]:
    answer = http.post("/v1/auth/passkeys/login/options", json={"email": email} if email else {})
    assert answer.status_code == 200, answer.text
    return answer.json()


def passkey_login(http: httpx.Client, options: dict[str, Any], credential: dict[str, Any]) -> httpx.Response:
    return http.post(
        "/v1/auth/passkeys/login/verify",
        json={"challengeToken": options["challengeToken"], "credential": credential},
    )


def test_passkey_register_then_login(auth: AuthStack, http: httpx.Client, events: Any) -> None:
    ana = Account(http)
    device = SoftwareAuthenticator(origin=APP_URL)
    options = http.post("/v1/auth/passkeys/register/options", headers=ana.headers).json()["publicKey"]
    assert options["rp"]["id"] == "app.acme.dev"
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    registered = register_passkey(http, ana, device)
    assert registered.status_code == 201, registered.text
    passkey = registered.json()
    assert passkey["name"] == "Test laptop" and passkey["transports"] == ["internal", "hybrid"]
    assert passkey["id"] == next(iter(device.credentials.values())).id

    again = http.post("/v1/auth/passkeys/register/options", headers=ana.headers).json()["publicKey"]
    assert [c["id"] for c in again["excludeCredentials"]] == [passkey["id"]]

    discoverable = passkey_options(http)
    assert discoverable["publicKey"]["allowCredentials"] == []
    assert discoverable["publicKey"]["rpId"] == "app.acme.dev"
    session = passkey_login(http, discoverable, device.authenticate(discoverable["publicKey"]))
    assert session.status_code == 200, session.text
    me = ana.me(session.json())
    assert me["amr"] == ["webauthn"] and me["email"] == EMAIL

    by_email = passkey_options(http, EMAIL)
    assert [c["id"] for c in by_email["publicKey"]["allowCredentials"]] == [passkey["id"]]
    assert passkey_login(http, by_email, device.authenticate(by_email["publicKey"])).status_code == 200

    listed = http.get("/v1/auth/passkeys", headers=ana.headers).json()["items"]
    assert [p["id"] for p in listed] == [passkey["id"]] and listed[0]["lastUsedAt"] is not None
    assert "publicKey" not in listed[0]
    assert "passkey.added" in event_types(events, me["id"])


def test_a_passkey_from_another_origin_is_refused(auth: AuthStack, http: httpx.Client) -> None:
    ana = Account(http)
    device = SoftwareAuthenticator(origin=APP_URL)
    phished = register_passkey(http, ana, device, origin="https://app.acme.dev.evil.example")
    assert phished.status_code == 422 and phished.json()["type"].endswith("/passkey-refused")
    assert register_passkey(http, ana, SoftwareAuthenticator(origin=APP_URL)).status_code == 201
    device = SoftwareAuthenticator(origin=APP_URL)
    assert register_passkey(http, ana, device).status_code == 201
    options = passkey_options(http)
    refused = passkey_login(http, options, device.authenticate(options["publicKey"], origin="https://evil.example"))
    assert refused.status_code == 401 and refused.json()["type"].endswith("/invalid-credentials")
    assert "origin" in refused.json()["detail"]


def test_a_passkey_for_another_rp_id_is_refused(auth: AuthStack, http: httpx.Client) -> None:
    ana = Account(http)
    device = SoftwareAuthenticator(origin=APP_URL)
    assert register_passkey(http, ana, device, rp_id="evil.example").status_code == 422
    assert register_passkey(http, ana, device).status_code == 201
    options = passkey_options(http)
    refused = passkey_login(http, options, device.authenticate(options["publicKey"], rp_id="evil.example"))
    assert refused.status_code == 401


def test_a_passkey_challenge_works_once(auth: AuthStack, http: httpx.Client) -> None:
    ana = Account(http)
    device = SoftwareAuthenticator(origin=APP_URL)
    assert register_passkey(http, ana, device).status_code == 201
    options = passkey_options(http)
    assert passkey_login(http, options, device.authenticate(options["publicKey"])).status_code == 200
    replayed = passkey_login(http, options, device.authenticate(options["publicKey"]))
    assert replayed.status_code == 400 and replayed.json()["type"].endswith("/passkey-challenge")


def test_a_sign_count_going_back_is_refused(auth: AuthStack, http: httpx.Client, events: Any) -> None:
    ana = Account(http)
    device = SoftwareAuthenticator(origin=APP_URL)
    assert register_passkey(http, ana, device).status_code == 201
    for _ in range(2):
        options = passkey_options(http)
        assert passkey_login(http, options, device.authenticate(options["publicKey"])).status_code == 200
    options = passkey_options(http)
    cloned = passkey_login(http, options, device.authenticate(options["publicKey"], sign_count=1))
    assert cloned.status_code == 401 and "sign count" in cloned.json()["detail"]
    options = passkey_options(http)
    same = passkey_login(http, options, device.authenticate(options["publicKey"], sign_count=2))
    assert same.status_code == 401
    options = passkey_options(http)
    assert passkey_login(http, options, device.authenticate(options["publicKey"])).status_code == 200
    assert event_types(events).count("login.failed") == 2


def test_an_unknown_passkey_is_refused(auth: AuthStack, http: httpx.Client) -> None:
    stranger = SoftwareAuthenticator(origin=APP_URL)
    stranger.register(
        {
            "rp": {"id": "app.acme.dev"},
            "user": {"id": "dXNy", "name": "x"},
            "challenge": "AA",
            "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
        }
    )
    options = passkey_options(http)
    refused = passkey_login(http, options, stranger.authenticate(options["publicKey"]))
    assert refused.status_code == 401 and "not registered" in refused.json()["detail"]


def test_passkeys_are_renamed_and_deleted(auth: AuthStack, http: httpx.Client, events: Any) -> None:
    ana = Account(http)
    device = SoftwareAuthenticator(origin=APP_URL)
    passkey = register_passkey(http, ana, device).json()
    renamed = http.patch(f"/v1/auth/passkeys/{passkey['id']}", headers=ana.headers, json={"name": "Phone"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Phone"
    assert http.get("/v1/auth/passkeys", headers=ana.headers).json()["items"][0]["name"] == "Phone"
    bob = Account(http, "bob@example.com")
    assert http.delete(f"/v1/auth/passkeys/{passkey['id']}", headers=bob.headers).status_code == 404
    deleted = http.delete(f"/v1/auth/passkeys/{passkey['id']}", headers=ana.headers)
    assert deleted.status_code == 204
    assert http.get("/v1/auth/passkeys", headers=ana.headers).json()["items"] == []
    assert http.delete(f"/v1/auth/passkeys/{passkey['id']}", headers=ana.headers).status_code == 404
    options = passkey_options(http)
    assert passkey_login(http, options, device.authenticate(options["publicKey"])).status_code == 401
    user_events = event_types(events, ana.me(ana.session)["id"])
    assert user_events.index("passkey.added") < user_events.index("passkey.removed")


def test_a_passkey_without_user_verification_still_asks_for_totp(auth: AuthStack, http: httpx.Client) -> None:
    away_from_step_edges()
    ana = Account(http)
    ana.turn_on_mfa()
    key = SoftwareAuthenticator(origin=APP_URL, user_verifying=False)  # a security key without a PIN
    assert register_passkey(http, ana, key).status_code == 201
    options = passkey_options(http)
    answer = passkey_login(http, options, key.authenticate(options["publicKey"]))
    assert answer.status_code == 200 and answer.json()["mfaRequired"] is True
    finished = http.post("/v1/auth/login/mfa", json={"mfaToken": answer.json()["mfaToken"], "code": ana.code(+1)})
    assert finished.status_code == 200, finished.text
    assert ana.me(finished.json())["amr"] == ["webauthn", "otp"]
    verifying = SoftwareAuthenticator(origin=APP_URL)
    assert register_passkey(http, ana, verifying).status_code == 201
    options = passkey_options(http)
    direct = passkey_login(http, options, verifying.authenticate(options["publicKey"]))
    assert ana.me(direct.json())["amr"] == ["webauthn"], "user verification makes a passkey two factors in one"


def test_the_routes_are_in_openapi_with_problem_responses(auth: AuthStack, http: httpx.Client) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    assert {"post"} <= set(paths["/v1/auth/login/mfa"])
    assert "application/problem+json" in paths["/v1/auth/login/mfa"]["post"]["responses"]["429"]["content"]
    for path in (
        "/v1/auth/mfa/totp/enroll",
        "/v1/auth/mfa/totp/confirm",
        "/v1/auth/mfa/totp",
        "/v1/auth/mfa/recovery-codes",
        "/v1/auth/passkeys/register/options",
        "/v1/auth/passkeys/register/verify",
        "/v1/auth/passkeys/login/options",
        "/v1/auth/passkeys/login/verify",
        "/v1/auth/passkeys",
        "/v1/auth/passkeys/{passkey_id}",
    ):
        assert path in paths, path


@pytest.mark.parametrize(
    "credential",
    [
        {},
        {"id": "AAAA", "rawId": "AAAA", "type": "public-key", "response": []},
        {"id": "AAAA", "rawId": "AAAA", "type": "public-key", "response": {"userHandle": 7, "transports": "usb"}},
        {"id": "!!", "rawId": "!!", "response": {"clientDataJSON": "e30", "attestationObject": "oA"}},
    ],
)
def test_malformed_credentials_are_refused_without_a_server_error(
    auth: AuthStack, http: httpx.Client, credential: dict[str, Any]
) -> None:
    ana = Account(http)
    device = SoftwareAuthenticator(origin=APP_URL)
    assert register_passkey(http, ana, device).status_code == 201
    token = http.post("/v1/auth/passkeys/register/options", headers=ana.headers).json()["challengeToken"]
    registered = http.post(
        "/v1/auth/passkeys/register/verify",
        headers=ana.headers,
        json={"challengeToken": token, "credential": credential},
    )
    assert registered.status_code == 422, registered.text
    known = dict(credential, id=next(iter(device.credentials.values())).id)
    known["rawId"] = known["id"]
    for attempt in (credential, known):
        answer = passkey_login(http, passkey_options(http), attempt)
        assert answer.status_code in (401, 422), answer.text
