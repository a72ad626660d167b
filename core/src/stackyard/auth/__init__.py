"""Authentication and sessions: what Auth0, Clerk or Supabase Auth give an application.

- `context`: `AuthContext`, what one request needs (Redis, MongoDB, settings, keys, clock)
- `users`: users in MongoDB, normalised unique emails, the public view of a user
- `passwords`: argon2id hashing (rehash on login) and the password policy
- `keys`, `rotation`: the signing key set, its JWKS, and the operator's rotation rules
- `tokens`: access tokens (JWT, EdDSA, ES256 or RS256 with kid) issued and verified
- `sessions`: sessions in Redis, refresh tokens rotated on use with reuse detection
- `onetime`: single-use hashed expiring tokens (email links, challenges, OAuth state)
- `attempts`: per-IP limits and per-account lockout with growing delay
- `audit`: the security audit log and the platform event stream
- `mail`: the auth emails, sent through the email capability
- `flows`: sign-up, verification, login, password reset and change, email change, magic links
- `mfa`, `passkeys`: TOTP with recovery codes, and WebAuthn
- `federation`: login with Google, GitHub or any OpenID provider (`IdentityProvider`)
- `orgs`, `admin`: organisations with roles, and the admin API's operations
- `contract`, `contract_mfa`, `contract_oauth`, `contract_orgs`, `contract_admin`: the API's request
  and response bodies, shared by the api and the SDK
"""
