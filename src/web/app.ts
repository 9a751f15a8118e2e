/**
 * buildWeb(): the console as a Fastify app — JSON API under /api/, the static page under /ui/,
 * live events, /metrics and /healthz — over the services `serve` hands in (see services.ts).
 *
 * Refuses (SmarthostError SH_CONFIG_INVALID) a non-loopback address without web.adminPassword,
 * and an adminPassword that is not a scrypt hash (a plain-text password in a config file is
 * exactly what this console exists to avoid). Tests call `app.inject()`; startWeb() listens.
 * Every response carries a strict Content-Security-Policy: the page loads only its own files.
 */
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import cookie from '@fastify/cookie';
import rateLimit from '@fastify/rate-limit';
import fastifyStatic from '@fastify/static';
import { SmarthostError } from '../core/errors.ts';
import { systemClock, type Clock } from '../core/clock.ts';
import { silentLogger, type Logger } from '../core/logger.ts';
import { isPasswordHash } from '../core/password.ts';
import { resolveSecret } from '../config/secret.ts';
import type { WebConfig } from '../config/sections/misc.ts';
import { installAuth, isLoopback } from './auth.ts';
import { installErrorHandler } from './http.ts';
import { createMetrics } from './metrics.ts';
import { createSessionTable } from './sessions.ts';
import type { WebServices } from './services.ts';
import { embeddedKeys } from '../core/embedded.ts';
import { serveEmbeddedUi } from './embedded-ui.ts';
import badmailRoutes from './routes/badmail.ts';
import configRoutes from './routes/config.ts';
import dashboardRoutes from './routes/dashboard.ts';
import diagnosticsRoutes from './routes/diagnostics.ts';
import eventRoutes from './routes/events.ts';
import historyRoutes from './routes/history.ts';
import metricsRoutes from './routes/metrics.ts';
import queueRoutes from './routes/queue.ts';
import refusalRoutes from './routes/refusals.ts';
import sendRoutes from './routes/send.ts';
import upstreamRoutes from './routes/upstreams.ts';

/** The console's own settings; web.health is read through services.queueAgeThresholdMs(). */
type ConsoleConfig = { web: Omit<WebConfig, 'health'> };

export interface WebOptions {
  logger?: Logger;
  clock?: Clock;
  /** Login attempts per client address per minute (default 10). */
  loginPerMinute?: number;
}

const UI_ROOT = path.join(import.meta.dirname, 'ui');
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/** The resolved password hash, or undefined; throws when the config makes the console unsafe (also run by `config check`). */
export function passwordHashFrom(web: ConsoleConfig['web']): string | undefined {
  let hash: string | undefined;
  if (web.adminPassword !== undefined) {
    try {
      hash = resolveSecret(web.adminPassword);
    } catch (err) {
      throw new SmarthostError('SH_SECRET_MISSING', `web.adminPassword: ${(err as Error).message}`);
    }
    if (!isPasswordHash(hash)) {
      throw new SmarthostError('SH_CONFIG_INVALID', 'web.adminPassword must be a scrypt hash (scrypt$N$r$p$salt$hash), not the password itself; see docs/deployment.md "Console login"');
    }
  }
  if (!hash && !isLoopback(web.address)) {
    throw new SmarthostError('SH_CONFIG_INVALID', `the console would listen on ${web.address}, which is not a loopback address, but web.adminPassword is not set: set a password hash, or keep web.address 127.0.0.1`);
  }
  return hash;
}

export async function buildWeb(services: WebServices, config: ConsoleConfig, options: WebOptions = {}): Promise<FastifyInstance> {
  const logger = options.logger ?? silentLogger();
  const clock = options.clock ?? systemClock;
  const passwordHash = passwordHashFrom(config.web);
  const app = Fastify({ logger: false, bodyLimit: 2 * 1024 * 1024, trustProxy: false });

  await app.register(cookie);
  await app.register(rateLimit, { global: false });
  installErrorHandler(app, logger);
  app.addHook('onSend', async (_request, reply) => {
    reply.header('content-security-policy', CSP);
    reply.header('x-content-type-options', 'nosniff');
    reply.header('x-frame-options', 'DENY');
    reply.header('referrer-policy', 'no-referrer');
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
  });
  installAuth(app, {
    adminUser: config.web.adminUser,
    passwordHash,
    proxyUserHeader: config.web.trustProxyUserHeader,
    secureCookies: config.web.secureCookies,
    loginPerMinute: options.loginPerMinute ?? 10,
  }, createSessionTable(clock), logger);

  const metrics = createMetrics(clock);
  const unsubscribe = services.events.subscribe((e) => metrics.observe(e));
  app.addHook('onClose', async () => unsubscribe());

  const routeOptions = { services, logger, clock };
  for (const plugin of [dashboardRoutes, queueRoutes, historyRoutes, badmailRoutes, sendRoutes, upstreamRoutes, configRoutes, diagnosticsRoutes, eventRoutes, refusalRoutes]) {
    await app.register(plugin, routeOptions);
  }
  await app.register(metricsRoutes, { ...routeOptions, metrics });

  const embeddedUi = embeddedKeys('ui/'); // a single executable carries the files inside (core/embedded.ts)
  if (embeddedUi) serveEmbeddedUi(app, embeddedUi);
  else {
    await app.register(fastifyStatic, { root: UI_ROOT, prefix: '/ui/', index: false, cacheControl: false });
    app.get('/', (_request, reply) => reply.type('text/html; charset=utf-8').sendFile('index.html'));
  }
  return app;
}

/** Builds the console and listens on web.address:web.port; resolves with the URL. */
export async function startWeb(services: WebServices, config: ConsoleConfig, options: WebOptions = {}): Promise<{ app: FastifyInstance; url: string }> {
  const app = await buildWeb(services, config, options);
  await app.listen({ host: config.web.address, port: config.web.port });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.web.port;
  const host = config.web.address.includes(':') ? `[${config.web.address}]` : config.web.address;
  const url = `http://${host}:${port}/`;
  (options.logger ?? silentLogger()).info({ url }, 'web console listening');
  return { app, url };
}
