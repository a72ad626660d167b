// A relying party built on openid-client (panva/openid-client v6), as a node app would use
// it, driven by tests/oidc over stdin and stdout: one JSON request a line in, one JSON answer
// a line out, in order. Each request names an operation and a client (a name of the test's
// choosing); `discover` configures that client from the issuer's discovery document, and the
// other operations use it. The PKCE verifier, state and nonce of an authorization request
// stay here, as they would in the app's session, until its `callback`.
//
//   {"id": 1, "op": "discover", "client": "spa", "issuer": "http://127.0.0.1:41234",
//    "clientId": "demo-spa"}                              (no clientSecret: a public client)
//   {"id": 2, "op": "authorize", "client": "spa", "redirectUri": "...", "scope": "openid email"}
//   -> {"id": 2, "ok": true, "result": {"url": "http://127.0.0.1:41234/oauth2/authorize?..."}}
//   {"id": 3, "op": "callback", "client": "spa", "url": "http://127.0.0.1:8401/callback?code=..."}
//   -> {"id": 3, "ok": true, "result": {"tokens": {...}, "claims": {...}}}
//
// A failure answers {"id", "ok": false, "error": {"name", "code", "error", "error_description",
// "status", "message"}} (openid-client's error classes carry those fields). Plain http is
// allowed (allowInsecureRequests): the stack of the tests listens on loopback.
import { readFileSync } from "node:fs";
import * as readline from "node:readline";
import * as client from "openid-client";

const clients = new Map(); // name -> { config, pending: { state, nonce, codeVerifier, redirectUri } }

function configOf(name) {
  const entry = clients.get(name);
  if (!entry) throw new Error(`client ${name} is not configured: send "discover" first`);
  return entry;
}

function authentication(request) {
  if (!request.clientSecret) return client.None();
  if (request.auth === "post") return client.ClientSecretPost(request.clientSecret);
  return client.ClientSecretBasic(request.clientSecret);
}

function tokensOf(response) {
  const claims = response.id_token ? response.claims() : undefined;
  return { tokens: { ...response }, claims: claims ?? null };
}

const operations = {
  async discover(request) {
    const config = await client.discovery(
      new URL(request.issuer),
      request.clientId,
      request.metadata ?? {},
      authentication(request),
      { execute: [client.allowInsecureRequests] },
    );
    clients.set(request.client, { config, pending: null });
    return { serverMetadata: config.serverMetadata() };
  },

  async authorize(request) {
    const entry = configOf(request.client);
    const codeVerifier = client.randomPKCECodeVerifier();
    const codeChallenge = await client.calculatePKCECodeChallenge(codeVerifier);
    const state = client.randomState();
    const nonce = client.randomNonce();
    const parameters = {
      redirect_uri: request.redirectUri,
      scope: request.scope ?? "openid email profile",
      code_challenge: codeChallenge,
      code_challenge_method: "S256",
      state,
      nonce,
      ...(request.extra ?? {}),
    };
    entry.pending = { state, nonce, codeVerifier, redirectUri: request.redirectUri };
    return { url: client.buildAuthorizationUrl(entry.config, parameters).href, state, nonce };
  },

  async callback(request) {
    const entry = configOf(request.client);
    const pending = entry.pending;
    if (!pending) throw new Error("no authorization request is pending");
    const response = await client.authorizationCodeGrant(entry.config, new URL(request.url), {
      pkceCodeVerifier: pending.codeVerifier,
      expectedState: pending.state,
      expectedNonce: pending.nonce,
      idTokenExpected: true,
    });
    return tokensOf(response);
  },

  async userinfo(request) {
    const { config } = configOf(request.client);
    return await client.fetchUserInfo(config, request.accessToken, request.sub ?? client.skipSubjectCheck);
  },

  async refresh(request) {
    const { config } = configOf(request.client);
    return tokensOf(await client.refreshTokenGrant(config, request.refreshToken));
  },

  async endSessionUrl(request) {
    const { config } = configOf(request.client);
    const parameters = { id_token_hint: request.idTokenHint, post_logout_redirect_uri: request.postLogoutRedirectUri };
    if (request.state) parameters.state = request.state;
    return { url: client.buildEndSessionUrl(config, parameters).href };
  },

  async clientCredentials(request) {
    const { config } = configOf(request.client);
    const parameters = request.scope ? { scope: request.scope } : {};
    return tokensOf(await client.clientCredentialsGrant(config, parameters));
  },

  async introspect(request) {
    const { config } = configOf(request.client);
    return { ...(await client.tokenIntrospection(config, request.token)) };
  },

  async revoke(request) {
    const { config } = configOf(request.client);
    await client.tokenRevocation(config, request.token);
    return {};
  },
};

async function errorOf(err) {
  const fields = { name: err?.name ?? "Error", message: String(err?.message ?? err) };
  for (const key of ["code", "error", "error_description", "status"]) {
    if (err?.[key] !== undefined) fields[key] = err[key];
  }
  // A 401 with WWW-Authenticate (invalid_client through client_secret_basic) is a challenge
  // error whose response still holds the RFC 6749 error body.
  if (err?.response instanceof Response && fields.error === undefined) {
    fields.status = err.response.status;
    try {
      const body = await err.response.clone().json();
      if (body?.error) fields.error = body.error;
      if (body?.error_description) fields.error_description = body.error_description;
    } catch {
      // not JSON: the fields above say enough
    }
  }
  if (err?.cause && typeof err.cause === "object" && !(err.cause instanceof Response)) {
    fields.cause = String(err.cause?.message ?? JSON.stringify(err.cause));
  }
  return fields;
}

const lines = readline.createInterface({ input: process.stdin, terminal: false });
let queue = Promise.resolve();
lines.on("line", (line) => {
  if (!line.trim()) return;
  queue = queue.then(async () => {
    let request;
    try {
      request = JSON.parse(line);
      const operation = operations[request.op];
      if (!operation) throw new Error(`unknown op ${request.op}`);
      const result = await operation(request);
      process.stdout.write(JSON.stringify({ id: request.id, ok: true, result }) + "\n");
    } catch (err) {
      process.stdout.write(JSON.stringify({ id: request?.id ?? null, ok: false, error: await errorOf(err) }) + "\n");
    }
  });
});
lines.on("close", () => queue.then(() => process.exit(0)));
const installed = new URL("./node_modules/openid-client/package.json", import.meta.url);
process.stdout.write(JSON.stringify({ ready: true, openidClient: JSON.parse(readFileSync(installed)).version }) + "\n");
