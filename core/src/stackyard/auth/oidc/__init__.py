"""stackyard as an OpenID Provider: applications registered as `OIDCClient`s sign their users
in through the authorization code flow, and services get tokens with client credentials.

- `browser`: the provider's browser session (single sign-on across clients), a cookie
- `interaction`: authorization requests waiting for a login or a consent
- `consents`: the scopes a user granted a third-party client
"""
