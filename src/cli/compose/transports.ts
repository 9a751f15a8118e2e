/**
 * One Transport per configured upstream, chosen by the URL's scheme, with the Microsoft 365 token
 * source wired in where the upstream uses OAuth2 (XOAUTH2 or Graph). Order is failover order.
 */
import type { Logger } from '../../core/logger.ts';
import type { Clock } from '../../core/clock.ts';
import type { Transport } from '../../core/types.ts';
import type { Config } from '../../config/schema.ts';
import type { UpstreamConfig } from '../../config/sections/upstreams.ts';
import { createSmtpTransport } from '../../transports/smtp.ts';
import { createGraphTransport } from '../../transports/graph.ts';
import { createConnectorTransport } from '../../transports/connector.ts';
import { createTokenProvider, type TokenProvider } from '../../m365/tokens.ts';
import { smtpTokenSource } from '../../m365/xoauth2.ts';
import { effectiveLimits } from '../../m365/limits.ts';
import path from 'node:path';

export interface BuiltTransports {
  transports: Transport[];
  /** Token sources by upstream name (console: token expiry; metrics: renewals). */
  tokens: Map<string, TokenProvider>;
}

function needsToken(u: UpstreamConfig): boolean {
  return u.url.startsWith('graph://') || u.auth === 'xoauth2';
}

/** Relative files in the config (ca, certificates, keys) resolve against the config file's folder. */
export function configDirOf(config: Config): string {
  return config.source === '(defaults)' ? process.cwd() : path.dirname(config.source);
}

/**
 * The upstreams with Microsoft 365's limits filled in where the config leaves them open (500
 * recipients per message, 30 messages/min and 10,000 recipients/day per SMTP AUTH mailbox, Graph
 * at 4 connections): the delivery manager splits and paces by these, so a scanner's burst waits in
 * our queue instead of being refused by Microsoft.
 */
export function withEffectiveLimits(config: Config): Config {
  return { ...config, upstreams: config.upstreams.map((u) => ({ ...u, ...effectiveLimits(u) })) };
}

export function buildTransports(config: Config, deps: { logger: Logger; clock: Clock }): BuiltTransports {
  const tokens = new Map<string, TokenProvider>();
  const configDir = configDirOf(config);
  const transports = config.upstreams.map((u) => {
    const logger = deps.logger.child({ upstream: u.name });
    let token: TokenProvider | undefined;
    if (needsToken(u)) {
      token = createTokenProvider(u, { logger, mailroot: config.mailrootPath, clock: deps.clock, configDir });
      tokens.set(u.name, token);
    }
    if (u.url.startsWith('graph://')) return createGraphTransport(u, { logger, tokenProvider: token!, configDir });
    if (u.url.startsWith('connector://')) return createConnectorTransport(u, { logger, hostname: config.hostnameResolved, configDir });
    return createSmtpTransport(u, { logger, hostname: config.hostnameResolved, configDir, tokenProvider: token ? smtpTokenSource(token) : undefined });
  });
  return { transports, tokens };
}
