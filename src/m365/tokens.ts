/**
 * OAuth2 access tokens for Microsoft 365 upstreams, from the Microsoft identity platform v2 through
 * Microsoft's own library (@azure/msal-node):
 *   app        ConfidentialClientApplication, client credentials with a client secret or a
 *              certificate assertion; scope https://outlook.office365.com/.default (SMTP) or
 *              https://graph.microsoft.com/.default (Graph);
 *   delegated  PublicClientApplication: `smarthost m365 login` runs the device-code flow once, the
 *              refresh token is kept in MAILROOT/m365/NAME.tokens.json (mode 0600, msal cache plugin)
 *              and used to renew.
 * Guarantees: one token per upstream, reused until shortly before it expires (5 minutes, or half its
 * life when shorter), renewed by one request even when many deliveries ask at once; invalidate()
 * forces the next getToken() to fetch a fresh one (after an upstream refused it).
 * On failure: a TokenError (SH_TOKEN) whose message says in plain words what Entra ID refused and
 * what to do (revoked sign-in → "run smarthost m365 login again"); `routeBroken` tells the delivery
 * manager to park the upstream (messages wait in the queue) rather than bounce.
 *
 * msal and a loopback stand-in: msal-node requires an https authority and, for a host it does not
 * know, `knownAuthorities` (which also skips instance discovery). Its built-in fetch client cannot be
 * given an extra CA, so we hand it a network module (./http.ts) that honours the upstream's `ca`
 * file. With those two settings msal talks to the test stand-in exactly as to login.microsoftonline.com.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createHash, randomUUID, X509Certificate } from 'node:crypto';
import { ConfidentialClientApplication, PublicClientApplication, type AuthenticationResult, type Configuration, type ICachePlugin, type TokenCacheContext } from '@azure/msal-node';
import { SmarthostError } from '../core/errors.ts';
import { systemClock, type Clock } from '../core/clock.ts';
import type { Logger } from '../core/logger.ts';
import { resolveSecret } from '../config/secret.ts';
import type { UpstreamConfig } from '../config/sections/upstreams.ts';
import { createFetch, msalNetworkModule } from './http.ts';
import { explainM365, type M365Explanation } from './errors.ts';

export const SMTP_APP_SCOPE = 'https://outlook.office365.com/.default';
export const GRAPH_APP_SCOPE = 'https://graph.microsoft.com/.default';
export const SMTP_DELEGATED_SCOPE = 'https://outlook.office.com/SMTP.Send';
export const GRAPH_DELEGATED_SCOPE = 'https://graph.microsoft.com/Mail.Send';

export interface TokenProvider {
  getToken(): Promise<string>;
  invalidate(): void;
  /** Epoch ms at which the current token expires, if one is held. */
  expiresAt(): number | undefined;
}

export interface TokenDeps {
  logger: Logger;
  /** Absolute mailroot; the delegated token cache lives in MAILROOT/m365/. */
  mailroot: string;
  clock?: Clock;
  /** Folder relative certificate/key/ca paths are resolved against (the config file's); default: cwd. */
  configDir?: string;
}

/** A token could not be obtained; carries the plain-words explanation and whether the route is broken. */
export class TokenError extends SmarthostError {
  readonly explanation?: M365Explanation;
  readonly routeBroken: boolean;
  constructor(message: string, explanation: M365Explanation | undefined, routeBroken: boolean, cause?: unknown) {
    super('SH_TOKEN', message, { cause });
    this.explanation = explanation;
    this.routeBroken = routeBroken;
  }
}

/** Creates the token source of an upstream with an `oauth:` section. */
export function createTokenProvider(upstream: UpstreamConfig, deps: TokenDeps): TokenProvider {
  const oauth = upstream.oauth;
  if (!oauth) throw new SmarthostError('SH_CONFIG_INVALID', `upstream ${upstream.name} has no oauth: section`);
  const clock = deps.clock ?? systemClock;
  const scope = scopeFor(upstream);
  const acquire = oauth.mode === 'delegated' ? delegatedAcquirer(upstream, deps, scope) : appAcquirer(upstream, scope, deps.configDir);
  let current: { token: string; expiresAt: number; renewAt: number } | undefined;
  let pending: Promise<string> | undefined;

  async function fetchNew(): Promise<string> {
    const started = clock.now();
    let result: AuthenticationResult | null;
    try {
      result = await acquire();
    } catch (e) {
      throw toTokenError(upstream, e);
    }
    if (!result?.accessToken) throw new TokenError(`${upstream.name}: Entra ID returned no access token`, undefined, true);
    const expiresAt = result.expiresOn ? result.expiresOn.getTime() : started + 3600_000;
    const life = Math.max(0, expiresAt - started);
    current = { token: result.accessToken, expiresAt, renewAt: expiresAt - Math.min(300_000, life / 2) };
    deps.logger.info({ upstream: upstream.name, expiresAt: new Date(expiresAt).toISOString(), scope }, 'OAuth2 token obtained');
    return result.accessToken;
  }

  return {
    getToken() {
      if (current && clock.now() < current.renewAt) return Promise.resolve(current.token);
      pending ??= fetchNew().finally(() => { pending = undefined; });
      return pending;
    },
    invalidate() { current = undefined; },
    expiresAt: () => current?.expiresAt,
  };
}

/** Default scope: app-only .default for SMTP or Graph; delegated SMTP.Send / Mail.Send. */
/** An access token's claims, read without checking its signature: for display and diagnostics only. */
export function tokenClaims(token: string): Record<string, unknown> {
  try {
    return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    return {};
  }
}

/** What a token lets its holder do: application permissions (roles) or delegated scopes (scp). */
export function tokenGrants(claims: Record<string, unknown>): { kind: 'application' | 'delegated'; grants: string[] } {
  if (Array.isArray(claims.roles)) return { kind: 'application', grants: (claims.roles as unknown[]).map(String) };
  return { kind: 'delegated', grants: String(claims.scp ?? '').split(/\s+/).filter(Boolean) };
}

export function scopeFor(upstream: UpstreamConfig): string {
  if (upstream.oauth?.scope) return upstream.oauth.scope;
  const graph = upstream.url.startsWith('graph://');
  if (upstream.oauth?.mode === 'delegated') return graph ? GRAPH_DELEGATED_SCOPE : SMTP_DELEGATED_SCOPE;
  return graph ? GRAPH_APP_SCOPE : SMTP_APP_SCOPE;
}

/** The tenant from oauth.tenant, or the graph://TENANT/MAILBOX URL. */
export function tenantOf(upstream: UpstreamConfig): string {
  const fromUrl = /^graph:\/\/([^/]+)\//.exec(upstream.url)?.[1];
  const tenant = upstream.oauth?.tenant ?? fromUrl;
  if (!tenant) throw new SmarthostError('SH_CONFIG_INVALID', `upstream ${upstream.name}: oauth.tenant is not set`);
  return tenant;
}

function msalConfig(upstream: UpstreamConfig, configDir?: string): Configuration {
  const oauth = upstream.oauth!;
  const authorityBase = oauth.authority.replace(/\/+$/, '');
  const fetchLike = createFetch({ caFile: upstream.ca ? path.resolve(configDir ?? '', upstream.ca) : undefined, verify: upstream.verifyCertificate, timeoutMs: 30_000 });
  return {
    auth: {
      clientId: oauth.clientId,
      authority: `${authorityBase}/${tenantOf(upstream)}`,
      // Lets msal trust a non-Microsoft host (national cloud, stand-in) without instance discovery.
      knownAuthorities: [new URL(authorityBase).host],
    },
    system: { networkClient: msalNetworkModule(fetchLike) },
  };
}

function appAcquirer(upstream: UpstreamConfig, scope: string, configDir?: string): () => Promise<AuthenticationResult | null> {
  const oauth = upstream.oauth!;
  const config = msalConfig(upstream, configDir);
  if (oauth.certificate) {
    const certPem = readPem(path.resolve(configDir ?? '', oauth.certificate), 'certificate', upstream.name);
    const keyPem = readPem(path.resolve(configDir ?? '', oauth.privateKey ?? oauth.certificate), 'private key', upstream.name);
    const privateKey = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----/.exec(keyPem)?.[0];
    if (!privateKey) throw new SmarthostError('SH_CONFIG_INVALID', `upstream ${upstream.name}: no private key found in ${oauth.privateKey ?? oauth.certificate}`);
    const certOnly = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(certPem)?.[0];
    if (!certOnly) throw new SmarthostError('SH_CONFIG_INVALID', `upstream ${upstream.name}: no certificate found in ${oauth.certificate}`);
    const der = new X509Certificate(certOnly).raw;
    // A configured (SHA-1) thumbprint selects the classic RS256 + x5t assertion; otherwise PS256 + x5t#S256.
    config.auth.clientCertificate = oauth.thumbprint
      ? { thumbprint: oauth.thumbprint.replace(/:/g, ''), privateKey, x5c: certOnly }
      : { thumbprintSha256: createHash('sha256').update(der).digest('hex'), privateKey, x5c: certOnly };
  } else if (oauth.clientSecret) {
    try {
      config.auth.clientSecret = resolveSecret(oauth.clientSecret);
    } catch (e) {
      throw new SmarthostError('SH_SECRET_MISSING', `upstream ${upstream.name}: oauth.clientSecret: ${(e as Error).message}`);
    }
  }
  const app = new ConfidentialClientApplication(config);
  // skipCache: this module keeps the token and decides when to renew (msal's own 5-minute offset aside).
  return () => app.acquireTokenByClientCredential({ scopes: [scope], skipCache: true });
}

function delegatedAcquirer(upstream: UpstreamConfig, deps: TokenDeps, scope: string): () => Promise<AuthenticationResult | null> {
  const pca = publicClient(upstream, deps);
  return async () => {
    const accounts = await pca.getTokenCache().getAllAccounts();
    const mailbox = (upstream.mailbox ?? upstream.username)?.toLowerCase();
    const account = accounts.find((a) => a.username.toLowerCase() === mailbox) ?? accounts[0];
    if (!account) {
      throw new TokenError(`${upstream.name}: nobody has signed in for this upstream yet: run "smarthost m365 login --config FILE --upstream ${upstream.name}" once; messages wait in the queue meanwhile`, undefined, true);
    }
    return pca.acquireTokenSilent({ account, scopes: [scope], forceRefresh: true });
  };
}

/** The msal public client of a delegated upstream, with its token cache persisted owner-only. */
export function publicClient(upstream: UpstreamConfig, deps: Pick<TokenDeps, 'mailroot' | 'configDir'>): PublicClientApplication {
  const config = msalConfig(upstream, deps.configDir);
  config.cache = { cachePlugin: fileCachePlugin(tokenCachePath(upstream, deps.mailroot)) };
  return new PublicClientApplication(config);
}

export function tokenCachePath(upstream: UpstreamConfig, mailroot: string): string {
  return upstream.oauth?.tokenCache ? path.resolve(mailroot, upstream.oauth.tokenCache) : path.join(mailroot, 'm365', `${upstream.name}.tokens.json`);
}

/** msal cache plugin: reads the file before each access; writes it (0600, atomically) when it changed. */
function fileCachePlugin(file: string): ICachePlugin {
  return {
    async beforeCacheAccess(ctx: TokenCacheContext) {
      if (existsSync(file)) ctx.tokenCache.deserialize(readFileSync(file, 'utf8'));
    },
    async afterCacheAccess(ctx: TokenCacheContext) {
      if (!ctx.cacheHasChanged) return;
      mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      const tmp = `${file}.${randomUUID()}.tmp`;
      writeFileSync(tmp, ctx.tokenCache.serialize(), { mode: 0o600 });
      chmodSync(tmp, 0o600);
      renameSync(tmp, file);
    },
  };
}

/**
 * Runs the device-code sign-in for a delegated upstream once and stores the refresh token.
 * `show` receives Microsoft's instruction ("open https://microsoft.com/devicelogin and enter …").
 */
export async function loginWithDeviceCode(upstream: UpstreamConfig, deps: Pick<TokenDeps, 'mailroot' | 'configDir'>, show: (message: string) => void): Promise<{ username: string; expiresAt?: Date }> {
  if (upstream.oauth?.mode !== 'delegated') throw new SmarthostError('SH_USAGE', `upstream ${upstream.name} uses oauth mode ${upstream.oauth?.mode ?? '(none)'}; m365 login is only for mode delegated`);
  const pca = publicClient(upstream, deps);
  try {
    const r = await pca.acquireTokenByDeviceCode({ scopes: [scopeFor(upstream)], deviceCodeCallback: (d) => show(d.message) });
    if (!r?.account) throw new TokenError(`${upstream.name}: sign-in finished without an account`, undefined, true);
    return { username: r.account.username, expiresAt: r.expiresOn ?? undefined };
  } catch (e) {
    throw e instanceof TokenError ? e : toTokenError(upstream, e);
  }
}

function readPem(file: string, what: string, name: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new SmarthostError('SH_CONFIG_INVALID', `upstream ${name}: cannot read the ${what} file ${file}: ${(e as Error).message}`);
  }
}

/** Turns an msal or network error into a TokenError with Microsoft's reason in plain words. */
export function toTokenError(upstream: UpstreamConfig, e: unknown): TokenError {
  if (e instanceof TokenError) return e;
  const err = e as { errorCode?: string; errorMessage?: string; message?: string; subError?: string };
  const raw = [err.errorCode, err.subError, err.errorMessage ?? err.message].filter(Boolean).join(': ');
  const firstLine = raw.split(/\r?\n/)[0].replace(/\s+Trace ID:.*$/, '');
  const explanation = explainM365(0, undefined, raw);
  if (explanation) {
    return new TokenError(`${upstream.name}: Entra ID refused the token request: ${explanation.meaning} ${explanation.fix} (${firstLine})`, explanation, explanation.routeBroken, e);
  }
  // No Entra error code: the identity endpoint could not be reached; a later try may work.
  return new TokenError(`${upstream.name}: could not get a token from ${upstream.oauth?.authority}: ${firstLine}`, undefined, false, e);
}
