/**
 * Stand-in for the Microsoft identity platform v2 endpoints (login.microsoftonline.com), on https
 * loopback, built to the documented contracts:
 *   GET  /{tenant}/v2.0/.well-known/openid-configuration       (authority metadata msal-node reads)
 *   POST /{tenant}/oauth2/v2.0/token  grant_type=
 *        client_credentials  + client_secret, or + client_assertion (JWT signed with the app's
 *                            certificate: signature, aud = token endpoint, iss = sub = client_id,
 *                            exp/nbf, x5t (SHA-1, RS256) or x5t#S256 (SHA-256, PS256) all checked);
 *                            scope must be RESOURCE/.default; roles = the app's granted permissions
 *        urn:ietf:params:oauth:grant-type:device_code            (authorization_pending until approved)
 *        refresh_token       (rotated on every use; revocation → invalid_grant AADSTS50173)
 *   POST /{tenant}/oauth2/v2.0/devicecode
 * Errors are Entra's shape: { error, error_description: "AADSTSnnn: …", error_codes: [nnn] }.
 * Access tokens are RS256 JWTs signed with the stand-in's key; verifyAccessToken() checks them for
 * the SMTP and Graph stand-ins.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createHash, createPublicKey, generateKeyPairSync, randomBytes, randomUUID, X509Certificate } from 'node:crypto';
import { decodeJwt, signJwt, verifyJwt, type Claims } from './jwt.ts';
import { thumbprints, type Pem } from './pki.ts';

export interface AppRegistration {
  clientId: string;
  secret?: string;
  /** PEM of the certificate uploaded to the app registration. */
  certificate?: string;
  /** Application permissions granted with admin consent, per resource, e.g. { 'https://outlook.office365.com': ['SMTP.SendAsApp'] }. */
  roles?: Record<string, string[]>;
  /** Delegated flows allowed ("Allow public client flows"). */
  publicClient?: boolean;
}

export interface IdentityStandIn {
  /** Authority base, e.g. https://127.0.0.1:PORT (the tenant goes after it). */
  base: string;
  tenantId: string;
  tenantDomain: string;
  /** Public key PEM that signs access tokens. */
  signingKey: string;
  register(app: AppRegistration): void;
  /** Seconds an access token lives (default 3600). */
  tokenLifetime: number;
  /**
   * Seconds announced in expires_in when set (default: tokenLifetime). Longer than tokenLifetime, the
   * token dies before the client expects, as with a clock skew or a token revoked early: the client
   * learns it only from the upstream's refusal.
   */
  announcedLifetime?: number;
  /** The user approves the pending device code. */
  approveDevice(userCode: string, upn: string): void;
  /** Revokes every refresh token of a user (password reset, "revoke sessions"). */
  revokeUser(upn: string): void;
  /** Counts per grant type, for assertions. */
  issued: Record<string, number>;
  lastDeviceCode?: { user_code: string; device_code: string };
  close(): Promise<void>;
}

interface DeviceEntry { clientId: string; scope: string; userCode: string; expiresAt: number; upn?: string }
interface RefreshEntry { clientId: string; upn: string; scope: string; revoked: boolean }

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

export async function startIdentity(tls: Pem, opts: { tenantId?: string; tenantDomain?: string } = {}): Promise<IdentityStandIn> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
  const tenantId = opts.tenantId ?? randomUUID();
  const tenantDomain = opts.tenantDomain ?? 'contoso.onmicrosoft.com';
  const apps = new Map<string, AppRegistration>();
  const devices = new Map<string, DeviceEntry>();
  const refresh = new Map<string, RefreshEntry>();
  const usedJti = new Set<string>();
  let base = '';

  const state: IdentityStandIn = {
    base: '', tenantId, tenantDomain, signingKey: publicKey, tokenLifetime: 3600, issued: {},
    register(app) { apps.set(app.clientId, app); },
    approveDevice(userCode, upn) {
      for (const d of devices.values()) if (d.userCode === userCode) d.upn = upn;
    },
    revokeUser(upn) { for (const r of refresh.values()) if (r.upn === upn) r.revoked = true; },
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };

  const tenantOk = (t: string) => t === tenantId || t === tenantDomain || t === 'organizations';
  const now = () => Math.floor(Date.now() / 1000);
  const count = (g: string) => { state.issued[g] = (state.issued[g] ?? 0) + 1; };

  function accessToken(resource: string, claims: Claims): string {
    const t = now();
    return signJwt({ alg: 'RS256', kid: 'standin' }, { aud: resource, iss: `https://sts.windows.net/${tenantId}/`, tid: tenantId, iat: t, nbf: t, exp: t + state.tokenLifetime, ...claims }, privateKey);
  }

  function idToken(clientId: string, upn: string): string {
    const t = now();
    const oid = oidOf(upn);
    return signJwt({ alg: 'RS256' }, { aud: clientId, iss: `${base}/${tenantId}/v2.0`, tid: tenantId, oid, sub: oid, preferred_username: upn, name: upn, iat: t, nbf: t, exp: t + 3600, ver: '2.0' }, privateKey);
  }

  function fail(res: ServerResponse, status: number, error: string, code: number, text: string): void {
    send(res, status, { error, error_description: `AADSTS${code}: ${text}\r\nTrace ID: ${randomUUID()}\r\nCorrelation ID: ${randomUUID()}\r\nTimestamp: ${new Date().toISOString()}`, error_codes: [code], timestamp: new Date().toISOString(), trace_id: randomUUID(), correlation_id: randomUUID() });
  }

  /** Resource of a scope list: 'https://outlook.office.com/SMTP.Send offline_access' → resource + delegated scopes. */
  function splitScope(scope: string): { resource?: string; names: string[]; dotDefault: boolean } {
    const parts = scope.split(/\s+/).filter((s) => s && !['openid', 'profile', 'offline_access', 'email'].includes(s));
    let resource: string | undefined;
    const names: string[] = [];
    let dotDefault = false;
    for (const p of parts) {
      const i = p.lastIndexOf('/');
      if (i <= 'https://'.length) return { names: [], dotDefault: false };
      const r = p.slice(0, i);
      if (resource && resource !== r) return { names: [], dotDefault: false };
      resource = r;
      const n = p.slice(i + 1);
      if (n === '.default') dotDefault = true; else names.push(n);
    }
    return { resource, names, dotDefault };
  }

  function clientCredentials(res: ServerResponse, f: URLSearchParams, tokenUrl: string): void {
    const app = apps.get(f.get('client_id') ?? '');
    if (!app) return fail(res, 400, 'unauthorized_client', 700016, `Application with identifier '${f.get('client_id')}' was not found in the directory '${tenantDomain}'.`);
    const sc = splitScope(f.get('scope') ?? '');
    if (!sc.resource || !sc.dotDefault || sc.names.length) return fail(res, 400, 'invalid_scope', 1002012, `The provided value for scope ${f.get('scope')} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`);
    if (f.has('client_secret')) {
      if (!app.secret || f.get('client_secret') !== app.secret) return fail(res, 401, 'invalid_client', 7000215, 'Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.');
    } else if (f.get('client_assertion_type') === ASSERTION_TYPE && f.has('client_assertion')) {
      const why = checkAssertion(app, f.get('client_assertion')!, tokenUrl);
      if (why) return fail(res, 401, 'invalid_client', why.code, why.text);
    } else {
      return fail(res, 401, 'invalid_client', 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.");
    }
    count('client_credentials');
    const roles = app.roles?.[sc.resource] ?? [];
    const token = accessToken(sc.resource, { appid: app.clientId, azp: app.clientId, oid: oidOf(`app:${app.clientId}`), idtyp: 'app', roles });
    send(res, 200, { token_type: 'Bearer', expires_in: state.announcedLifetime ?? state.tokenLifetime, ext_expires_in: state.announcedLifetime ?? state.tokenLifetime, access_token: token });
  }

  function checkAssertion(app: AppRegistration, assertion: string, tokenUrl: string): { code: number; text: string } | undefined {
    if (!app.certificate) return { code: 700027, text: 'Client assertion contains an invalid signature. [Reason - The key was not found.]' };
    const d = decodeJwt(assertion);
    if (!d) return { code: 50027, text: 'JWT token is invalid or malformed.' };
    const tp = thumbprints(app.certificate);
    const keyMatches = (d.header.alg === 'RS256' && d.header.x5t === tp.x5t) || (d.header.alg === 'PS256' && d.header['x5t#S256'] === tp.x5tS256);
    if (!keyMatches) return { code: 700027, text: `Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of key used by client: '${String(d.header.x5t ?? d.header['x5t#S256'])}']` };
    const v = verifyJwt(assertion, createPublicKey(new X509Certificate(app.certificate).publicKey.export({ type: 'spki', format: 'pem' }) as string), now(), 300);
    if (!v.ok) return v.reason.includes('expired') || v.reason.includes('valid') ? { code: 700024, text: 'Client assertion is not within its valid time range.' } : { code: 700027, text: `Client assertion contains an invalid signature. [Reason - ${v.reason}]` };
    const c = v.claims;
    if (c.aud !== tokenUrl) return { code: 700027, text: `Client assertion audience claim does not match Realm issuer (got ${String(c.aud)}).` };
    if (c.iss !== app.clientId || c.sub !== app.clientId) return { code: 700023, text: 'Client assertion iss and sub must be the client id.' };
    if (typeof c.jti !== 'string' || usedJti.has(c.jti)) return { code: 700021, text: 'Client assertion jti is missing or was replayed.' };
    usedJti.add(c.jti);
    return undefined;
  }

  function delegatedTokens(res: ServerResponse, clientId: string, upn: string, scope: string, clientInfo: boolean): void {
    const sc = splitScope(scope);
    if (!sc.resource) return fail(res, 400, 'invalid_scope', 70011, `The provided value for the input parameter 'scope' is not valid.`);
    const rt = randomBytes(24).toString('base64url');
    refresh.set(rt, { clientId, upn, scope, revoked: false });
    const oid = oidOf(upn);
    const body: Record<string, unknown> = {
      token_type: 'Bearer', scope: sc.names.map((n) => `${sc.resource}/${n}`).join(' '), expires_in: state.tokenLifetime, ext_expires_in: state.tokenLifetime,
      access_token: accessToken(sc.resource, { appid: clientId, oid, upn, unique_name: upn, scp: sc.names.join(' '), idtyp: 'user' }),
      refresh_token: rt, id_token: idToken(clientId, upn),
    };
    if (clientInfo) body.client_info = Buffer.from(JSON.stringify({ uid: oid, utid: tenantId })).toString('base64url');
    send(res, 200, body);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', base);
    const m = /^\/([^/]+)\/(v2\.0\/\.well-known\/openid-configuration|oauth2\/v2\.0\/token|oauth2\/v2\.0\/devicecode)$/.exec(url.pathname);
    if (!m) return send(res, 404, { error: 'not_found' });
    const [, tenant, what] = m;
    if (!tenantOk(tenant)) return fail(res, 400, 'invalid_tenant', 90002, `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`);
    if (what.startsWith('v2.0')) {
      if (req.method !== 'GET') return send(res, 405, {});
      return send(res, 200, {
        token_endpoint: `${base}/${tenant}/oauth2/v2.0/token`,
        device_authorization_endpoint: `${base}/${tenant}/oauth2/v2.0/devicecode`,
        authorization_endpoint: `${base}/${tenant}/oauth2/v2.0/authorize`,
        end_session_endpoint: `${base}/${tenant}/oauth2/v2.0/logout`,
        issuer: `${base}/${tenantId}/v2.0`,
        jwks_uri: `${base}/${tenant}/discovery/v2.0/keys`,
        token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
        response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
        scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
        tenant_region_scope: 'EU',
      });
    }
    if (req.method !== 'POST') return send(res, 405, {});
    if (!String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) return fail(res, 400, 'invalid_request', 900144, "The request body must contain the following parameter: 'grant_type'.");
    const f = new URLSearchParams(await readBody(req));
    if (process.env.IDP_DEBUG) console.error("IDP", req.url, f.toString());
    const tokenUrl = `${base}/${tenant}/oauth2/v2.0/token`;
    if (what === 'oauth2/v2.0/devicecode') {
      const app = apps.get(f.get('client_id') ?? '');
      if (!app) return fail(res, 400, 'unauthorized_client', 700016, `Application with identifier '${f.get('client_id')}' was not found in the directory.`);
      const deviceCode = randomBytes(24).toString('base64url');
      const userCode = randomBytes(4).toString('hex').toUpperCase();
      devices.set(deviceCode, { clientId: app.clientId, scope: f.get('scope') ?? '', userCode, expiresAt: now() + 900 });
      state.lastDeviceCode = { user_code: userCode, device_code: deviceCode };
      return send(res, 200, { device_code: deviceCode, user_code: userCode, verification_uri: 'https://microsoft.com/devicelogin', expires_in: 900, interval: 1, message: `To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code ${userCode} to authenticate.` });
    }
    const grant = f.get('grant_type');
    if (grant === 'client_credentials') return clientCredentials(res, f, tokenUrl);
    // Entra accepts the RFC 8628 URN and the short form msal-node sends.
    if (grant === 'urn:ietf:params:oauth:grant-type:device_code' || grant === 'device_code') {
      const d = devices.get(f.get('device_code') ?? '');
      if (!d || d.clientId !== f.get('client_id')) return fail(res, 400, 'invalid_grant', 70000, 'Provided grant is invalid or malformed.');
      const app = apps.get(d.clientId)!;
      if (!app.publicClient) return fail(res, 401, 'invalid_client', 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.");
      if (d.expiresAt <= now()) return fail(res, 400, 'expired_token', 70019, 'Verification code expired.');
      if (!d.upn) return fail(res, 400, 'authorization_pending', 70016, 'OAuth 2.0 device flow error. Authorization is pending. Continue polling.');
      devices.delete(f.get('device_code')!);
      count('device_code');
      return delegatedTokens(res, d.clientId, d.upn, d.scope, f.get('client_info') === '1');
    }
    if (grant === 'refresh_token') {
      const r = refresh.get(f.get('refresh_token') ?? '');
      if (!r || r.clientId !== f.get('client_id')) return fail(res, 400, 'invalid_grant', 9002313, 'Invalid request. Request is malformed or invalid.');
      if (r.revoked) return fail(res, 400, 'invalid_grant', 50173, `The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '${new Date().toISOString()}' and the TokensValidFrom date (before which tokens are not valid) for this user is '${new Date().toISOString()}'.`);
      count('refresh_token');
      return delegatedTokens(res, r.clientId, r.upn, f.get('scope') ?? r.scope, f.get('client_info') === '1');
    }
    return fail(res, 400, 'unsupported_grant_type', 70003, `The app requested an unsupported grant type '${grant}'.`);
  }

  const server: Server = createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
    handle(req, res).catch((e) => send(res, 500, { error: 'server_error', error_description: String(e) }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
  state.base = base;
  return state;
}

/** Checks an access token issued by the stand-in, as Exchange Online and Graph do: signature, expiry, audience. */
export function verifyAccessToken(idp: { signingKey: string; tenantId: string }, token: string, audiences: string[]): { ok: true; claims: Claims } | { ok: false; reason: string } {
  const v = verifyJwt(token, idp.signingKey, Math.floor(Date.now() / 1000));
  if (!v.ok) return v;
  if (!audiences.includes(String(v.claims.aud))) return { ok: false, reason: `wrong audience ${String(v.claims.aud)}` };
  if (v.claims.tid !== idp.tenantId) return { ok: false, reason: 'wrong tenant' };
  return { ok: true, claims: v.claims };
}

function oidOf(name: string): string {
  const h = createHash('sha256').update(name).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}
