// A real OpenID Provider (panva/oidc-provider, certified by the OpenID Foundation) for
// stackyard's social-login tests. Nothing here is a mock of the protocol: discovery, JWKS,
// the authorization code flow with PKCE, signed id_tokens and userinfo are the package's.
//
// Configuration is one JSON document in the environment variable OIDC_PROVIDER_CONFIG:
//   { "port": 0, "clients": [{client_id, client_secret, redirect_uris, ...}],
//     "accounts": { "<login>": { "email": ..., "email_verified": true, "name": ... } } }
// The built-in development pages (devInteractions) log in any login name with any
// password; a login that is not in "accounts" gets <login>@example.com, verified.
// POST /_harness/accounts with {"<login>": {claims}} adds or replaces accounts while it runs.
// It prints one line `listening <issuer>` when it is ready.
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const config = JSON.parse(process.env.OIDC_PROVIDER_CONFIG || '{}');
const accounts = new Map(Object.entries(config.accounts || {}));

function claimsOf(login) {
  const known = accounts.get(login);
  return {
    email: `${login}@example.com`,
    email_verified: true,
    name: login,
    ...(known || {}),
    sub: login,
  };
}

function configuration() {
  return {
    clients: (config.clients || []).map((client) => ({
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      ...client,
    })),
    // Every authorization request must carry a code_challenge (S256), and its code is
    // redeemed only with the matching code_verifier.
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'given_name', 'family_name', 'picture', 'locale'],
    },
    async findAccount(_ctx, sub) {
      return { accountId: sub, async claims() { return claimsOf(sub); } };
    },
    cookies: { keys: ['stackyard-harness-only-cookie-key'] },
    ttl: { AuthorizationCode: 60, AccessToken: 600, IdToken: 600, Interaction: 600, Session: 600, Grant: 600 },
  };
}

async function harnessRoutes(req, res) {
  if (req.method !== 'POST' || req.url !== '/_harness/accounts') return false;
  let body = '';
  for await (const chunk of req) body += chunk;
  for (const [login, claims] of Object.entries(JSON.parse(body || '{}'))) accounts.set(login, claims);
  res.writeHead(204).end();
  return true;
}

const server = createServer();
server.listen(config.port || 0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration());
  const callback = provider.callback();
  server.on('request', async (req, res) => {
    if (!(await harnessRoutes(req, res))) callback(req, res);
  });
  process.stdout.write(`listening ${issuer}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
