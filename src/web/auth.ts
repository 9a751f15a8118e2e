/**
 * Who may use the console, and proof that each action came from the console's own page.
 *
 * Three ways in, chosen by config.web:
 *  - adminPassword set: log in with web.adminUser and the password (scrypt hash in the config);
 *    POST /api/login is rate-limited per client address.
 *  - trustProxyUserHeader set: a reverse proxy that authenticates users (Apache/nginx with
 *    Kerberos, LDAP, SSO…) passes the user name in that header. Honoured only on requests from a
 *    loopback address, so the proxy must run on the same host and the console stay on loopback.
 *  - neither, on a loopback address: anyone on this host is "local" (the relay's own machine);
 *    buildWeb refuses a non-loopback address without a password.
 * Every state-changing request (POST/PUT/PATCH/DELETE under /api/, login aside) must carry the
 * session's CSRF token in X-CSRF-Token, or it is refused with 403 before its handler runs.
 * Every action is logged with the user and client address (audit()).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Logger } from '../core/logger.ts';
import { verifyPassword } from '../core/password.ts';
import { HttpError, parseInput } from './http.ts';
import { SESSION_COOKIE, sameToken, type Session, type SessionTable } from './sessions.ts';

declare module 'fastify' {
  interface FastifyRequest {
    consoleSession?: Session;
  }
}

export interface AuthSettings {
  adminUser: string;
  /** scrypt hash, already resolved from the config's secret reference. */
  passwordHash?: string;
  proxyUserHeader?: string;
  secureCookies: boolean;
  /** Login attempts allowed per client address per minute. */
  loginPerMinute: number;
}

const PUBLIC = new Set(['/api/login', '/api/session', '/metrics', '/healthz']);
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export function isLoopback(address: string): boolean {
  const a = address.replace(/^::ffff:/, '');
  return a === '::1' || a === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(a);
}

/** Logs a console action with who did it; the one place actions are written to the log. */
export function audit(logger: Logger, request: FastifyRequest, action: string, detail: Record<string, unknown> = {}): void {
  logger.info({ user: request.consoleSession?.user ?? '(none)', client: request.ip, action, ...detail }, `console: ${action}`);
}

export function installAuth(app: FastifyInstance, settings: AuthSettings, sessions: SessionTable, logger: Logger): void {
  const cookieOptions = { path: '/', httpOnly: true, sameSite: 'strict' as const, secure: settings.secureCookies };
  const openLocal = !settings.passwordHash && !settings.proxyUserHeader;

  function startSession(reply: FastifyReply, user: string): Session {
    const s = sessions.create(user);
    reply.setCookie(SESSION_COOKIE, s.id, cookieOptions);
    return s;
  }

  /** The user a trusted proxy vouches for, or undefined. */
  function proxyUser(request: FastifyRequest): string | undefined {
    if (!settings.proxyUserHeader || !isLoopback(request.ip)) return undefined;
    const v = request.headers[settings.proxyUserHeader.toLowerCase()];
    const user = Array.isArray(v) ? v[0] : v;
    return user && /^[\w.@\\-]{1,128}$/.test(user) ? user : undefined;
  }

  app.addHook('onRequest', async (request, reply) => {
    const url = request.url.split('?')[0];
    if (!url.startsWith('/api/')) return; // the page, its files, /metrics and /healthz need no session
    let session = sessions.get(request.cookies[SESSION_COOKIE]);
    const fromProxy = proxyUser(request);
    if (fromProxy && session?.user !== fromProxy) session = startSession(reply, fromProxy);
    if (!session && openLocal && isLoopback(request.ip)) session = startSession(reply, 'local');
    request.consoleSession = session;
    if (PUBLIC.has(url)) return;
    if (!session) throw new HttpError(401, 'log in first');
    if (!SAFE_METHODS.has(request.method)) {
      const origin = request.headers.origin;
      if (origin && new URL(origin).host !== request.headers.host) throw new HttpError(403, 'request from another site refused');
      const token = request.headers['x-csrf-token'];
      if (!sameToken(Array.isArray(token) ? token[0] : token, session.csrf)) {
        audit(logger, request, 'refused: missing or wrong CSRF token', { method: request.method, url });
        throw new HttpError(403, 'missing or wrong CSRF token: reload the console page and try again');
      }
    }
  });

  const loginBody = z.strictObject({ user: z.string().min(1).max(128), password: z.string().min(1).max(1024) });
  app.post('/api/login', { config: { rateLimit: { max: settings.loginPerMinute, timeWindow: 60_000 } } }, async (request, reply) => {
    const { user, password } = parseInput(loginBody, request.body);
    if (!settings.passwordHash) throw new HttpError(400, 'password login is not configured (web.adminPassword is not set)');
    const ok = user === settings.adminUser && (await verifyPassword(password, settings.passwordHash));
    if (!ok) {
      logger.warn({ user, client: request.ip }, 'console: login refused (wrong user name or password)');
      throw new HttpError(401, 'wrong user name or password');
    }
    sessions.destroy(request.cookies[SESSION_COOKIE]);
    const s = startSession(reply, user);
    logger.info({ user, client: request.ip }, 'console: login');
    return { user: s.user, csrf: s.csrf };
  });

  app.get('/api/session', async (request) => {
    const s = request.consoleSession;
    if (!s) throw new HttpError(401, settings.passwordHash ? 'log in first' : 'this console needs a login the relay is not configured for');
    return { user: s.user, csrf: s.csrf, canLogout: Boolean(settings.passwordHash) };
  });

  app.post('/api/logout', async (request, reply) => {
    audit(logger, request, 'logout');
    sessions.destroy(request.cookies[SESSION_COOKIE]);
    reply.clearCookie(SESSION_COOKIE, { path: '/' });
    return { ok: true };
  });
}
