"""Authentication and sessions: what Auth0, Clerk or Supabase Auth give an application.

- `keys`: the signing key set of access tokens and its JWKS
"""
