// The peer of bench/oidc.py: panva's oidc-provider (certified by the OpenID Foundation), the
// copy `make tools` installs for the harness (hack/harness/oidc), with a configuration of
// its own: client credentials, introspection and revocation on, the default in-memory
// adapter, one EdDSA signing key (the same algorithm as stackyard's Stack by default).
//
//   OIDC_PROVIDER_DIR=<the installed copy> BENCH_OIDC_CONFIG='{"port": 0, "jwk": {...},
//     "secret": "...", "audience": "https://reports.acme.dev"}' node bench/peers/oidc_provider.mjs
//
// Two confidential clients (client_secret_basic, client_credentials only):
// - `reports`: its tokens are JWTs signed with the key (resource indicators, the audience as
//   its default resource), what stackyard issues to a machine client;
// - `reports-opaque`: the package's default, an opaque token kept in the adapter (the one a
//   client can introspect: oidc-provider does not introspect its JWT access tokens).
// It prints one line `listening <issuer>` when it is ready.
import { createServer } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const dir = process.env.OIDC_PROVIDER_DIR;
const { default: Provider } = await import(pathToFileURL(join(dir, 'node_modules/oidc-provider/lib/index.js')).href);
const config = JSON.parse(process.env.BENCH_OIDC_CONFIG);
const SCOPE = 'reports:read reports:write';

const client = (clientId) => ({
  client_id: clientId,
  client_secret: config.secret,
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  token_endpoint_auth_method: 'client_secret_basic',
  scope: SCOPE,
  id_token_signed_response_alg: 'EdDSA',
});

const server = createServer();
server.listen(config.port || 0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [client('reports'), client('reports-opaque')],
    jwks: { keys: [config.jwk] },
    scopes: ['openid', 'offline_access', ...SCOPE.split(' ')],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: (ctx, c) => (c.clientId === 'reports' ? config.audience : undefined),
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: SCOPE,
          audience: config.audience,
          accessTokenTTL: 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'EdDSA' } },
        }),
      },
    },
    enabledJWA: { idTokenSigningAlgValues: ['EdDSA'] },
    cookies: { keys: ['stackyard-bench-only-cookie-key'] },
    ttl: { ClientCredentials: 600 },
  });
  server.on('request', provider.callback());
  process.stdout.write(`listening ${issuer}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
