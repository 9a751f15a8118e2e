/**
 * One Transport per configured upstream, chosen by the URL's scheme, with the Microsoft 365 token
 * source wired in where the upstream uses OAuth2 (XOAUTH2 or Graph). Order is failover order.
 * Plain SMTP upstreams (no OAuth2 token) deliver from a thread of their own (delivery.thread).
 * Each transport's code (and MSAL, mailparser) is loaded only when an upstream uses it: a relay
 * with plain SMTP upstreams never loads the Microsoft 365 libraries (about 20 MB less memory).
 */
import type { Logger } from '../../core/logger.ts';
import type { Clock } from '../../core/clock.ts';
import type { Transport } from '../../core/types.ts';
import { configDirOf, type Config } from '../../config/schema.ts';
import type { UpstreamConfig } from '../../config/sections/upstreams.ts';
import type { TokenProvider } from '../../m365/tokens.ts';
import { effectiveLimits } from '../../m365/limits.ts';
import { mailboxConnectionCaps } from '../../m365/quota.ts';
import { graphRequestSlots } from '../../m365/graph-concurrency.ts';

export interface BuiltTransports {
  transports: Transport[];
  /** Token sources by upstream name (console: token expiry; metrics: renewals). */
  tokens: Map<string, TokenProvider>;
}

function needsToken(u: UpstreamConfig): boolean {
  return u.url.startsWith('graph://') || u.auth === 'xoauth2';
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

export async function buildTransports(config: Config, deps: { logger: Logger; clock: Clock }): Promise<BuiltTransports> {
  const tokens = new Map<string, TokenProvider>();
  const configDir = configDirOf(config);
  const transports: Transport[] = [];
  // Exchange allows 3 simultaneous SMTP AUTH connections per mailbox, all upstreams together (432 4.3.2)
  const caps = mailboxConnectionCaps(config.upstreams);
  // and Graph 4 concurrent requests per app per mailbox, all graph:// upstreams of that pair together
  const graphSlots = graphRequestSlots(config.upstreams);
  for (const configured of config.upstreams) {
    const u = { ...configured, maxConnections: caps.get(configured.name) ?? configured.maxConnections };
    const logger = deps.logger.child({ upstream: u.name });
    let token: TokenProvider | undefined;
    if (needsToken(u)) {
      const { createTokenProvider } = await import('../../m365/tokens.ts');
      token = createTokenProvider(u, { logger, mailroot: config.mailrootPath, clock: deps.clock, configDir });
      tokens.set(u.name, token);
    }
    if (u.url.startsWith('graph://')) {
      const { createGraphTransport } = await import('../../transports/graph.ts');
      transports.push(createGraphTransport(u, { logger, tokenProvider: token!, configDir, slots: graphSlots.get(u.name) }));
    } else if (u.url.startsWith('connector://')) {
      const { createConnectorTransport } = await import('../../transports/connector.ts');
      transports.push(createConnectorTransport(u, { logger, hostname: config.hostnameResolved, configDir }));
    } else if (!token && config.delivery.thread) {
      const { createThreadedSmtpTransport } = await import('../../transports/smtp-thread.ts');
      transports.push(await createThreadedSmtpTransport(u, { logger, hostname: config.hostnameResolved, configDir }));
    } else {
      const { createSmtpTransport } = await import('../../transports/smtp.ts');
      const tokenProvider = token ? (await import('../../m365/xoauth2.ts')).smtpTokenSource(token) : undefined;
      transports.push(createSmtpTransport(u, { logger, hostname: config.hostnameResolved, configDir, tokenProvider }));
    }
  }
  return { transports, tokens };
}
