/**
 * smarthost doctor [--config FILE] — checks a configuration against the world it sends into:
 *
 *  1. the sending domains (sender rules, upstream mailboxes, Send As lists) have SPF records that
 *     authorise the path their upstream uses (Microsoft 365's include, or --public-ip for
 *     connector/direct delivery, or the smart host's address);
 *  2. the TLS certificate (tls.cert, or the self-signed one under mailroot/tls/) is not expiring;
 *  3. each upstream is reachable and accepts our credentials: EHLO (+ STARTTLS) + AUTH through
 *     nodemailer's verify(), which sends no message; retired BPOS host names and the Basic-auth
 *     countdown are flagged; a graph:// upstream gets a token as the relay would, which must grant
 *     Mail.Send (nothing is sent);
 *  4. the local clock agrees with the Date header of an HTTPS endpoint (skipped when offline).
 *
 * Each item is ok / warning / problem / could-not-check / skipped. Exit codes: 0 nothing wrong
 * (warnings and skipped items allowed), 1 a problem, 2 config error, 3 only could-not-check.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { configDirOf, type Config } from '../../config/schema.ts';
import { legacyWarning } from '../../inbound/tls-profile.ts';
import type { UpstreamConfig } from '../../config/sections/upstreams.ts';
import type { DnsClient } from '../../diagnostics/dns/client.ts';

export type DoctorState = 'ok' | 'warning' | 'problem' | 'could-not-check' | 'skipped';

export interface DoctorItem {
  area: 'spf' | 'tls' | 'upstream' | 'clock';
  subject: string;
  state: DoctorState;
  detail: string;
}

export interface DoctorOptions {
  publicIp?: string;
  dns: DnsClient;
  /** Per-connection timeout for upstream checks, ms. */
  timeoutMs: number;
  /** HTTPS (or, in tests, HTTP) URL whose Date header is compared with the local clock; undefined skips. */
  timeUrl?: string;
  now?: () => number;
}

const RETIRED_BPOS = /^smtp\.mail\.(emea\.|apac\.)?microsoftonline\.com$/i;
const DAY = 86_400_000;

/** Sending domains and the upstreams their mail may take (a rule without upstream may use any: failover). */
export function sendingDomains(config: Config): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  const all = config.upstreams.map((u) => u.name);
  const add = (address: string | undefined, upstreams: string[]): void => {
    const domain = address?.includes('@') ? address.split('@').pop()!.toLowerCase() : undefined;
    if (!domain || domain === '*' || !/^[a-z0-9.-]+\.[a-z0-9-]+$/i.test(domain)) return;
    const set = out.get(domain) ?? new Set<string>();
    upstreams.forEach((u) => set.add(u));
    out.set(domain, set);
  };
  for (const rule of config.senders) {
    const via = rule.upstream ? [rule.upstream] : all;
    rule.allow.forEach((a) => add(a, via));
    add(rule.rewriteTo, via);
  }
  for (const u of config.upstreams) {
    add(u.mailbox ?? u.username, [u.name]);
    u.sendAs.forEach((a) => add(a, [u.name]));
    const graphMailbox = /^graph:\/\/[^/]+\/(.+)$/.exec(u.url)?.[1];
    add(graphMailbox, [u.name]);
  }
  return out;
}

async function checkSpf(config: Config, opts: DoctorOptions): Promise<DoctorItem[]> {
  const { checkSendingPath, sendingPathOf } = await import('../../diagnostics/m365/sending-path.ts');
  const items: DoctorItem[] = [];
  const domains = sendingDomains(config);
  if (domains.size === 0) return [{ area: 'spf', subject: 'sending domains', state: 'skipped', detail: 'no sending domain found in senders rules or upstream mailboxes' }];
  for (const [domain, upstreamNames] of domains) {
    const seen = new Set<string>();
    for (const name of upstreamNames) {
      const u = config.upstreams.find((x) => x.name === name);
      if (!u) continue;
      const p = sendingPathOf(u.url, u.auth);
      const key = `${p.kind}:${p.kind === 'smart-host' ? p.host : ''}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const r = await checkSendingPath(domain, p, opts.dns, opts.publicIp);
      items.push({ area: 'spf', subject: `${domain} via ${u.name}`, state: r.state, detail: r.detail });
    }
  }
  return items;
}

function checkCertificate(config: Config, now: number): DoctorItem {
  const file = config.tls.cert ? path.resolve(configDirOf(config), config.tls.cert) : path.join(config.mailrootPath, 'tls', 'selfsigned.crt');
  if (!existsSync(file)) {
    return { area: 'tls', subject: 'certificate', state: config.tls.cert ? 'problem' : 'skipped', detail: config.tls.cert ? `${file} does not exist` : 'no certificate yet: a self-signed one is generated on first start' };
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(readFileSync(file));
  } catch (e) {
    return { area: 'tls', subject: file, state: 'problem', detail: `not a readable PEM certificate: ${(e as Error).message}` };
  }
  const notAfter = Date.parse(cert.validTo);
  const days = Math.floor((notAfter - now) / DAY);
  const what = `${cert.subject.replace(/\n/g, ', ')}, valid until ${new Date(notAfter).toISOString().slice(0, 10)}`;
  if (notAfter <= now) return { area: 'tls', subject: file, state: 'problem', detail: `EXPIRED: ${what}; clients that verify certificates refuse STARTTLS` };
  if (Date.parse(cert.validFrom) > now) return { area: 'tls', subject: file, state: 'problem', detail: `not valid yet (from ${cert.validFrom}): is the clock right?` };
  if (days <= config.tls.expiryWarningDays) return { area: 'tls', subject: file, state: 'warning', detail: `expires in ${days} day(s): ${what}` };
  return { area: 'tls', subject: file, state: 'ok', detail: `${days} days left: ${what}` };
}

/** Where to connect for an upstream, and how (nodemailer options), or why it cannot be checked here. */
async function transportOptions(u: UpstreamConfig, config: Config, opts: DoctorOptions): Promise<{ options?: Record<string, unknown>; trouble?: string }> {
  const scheme = /^([a-z+]+):\/\//i.exec(u.url)![1].toLowerCase();
  const { resolveSecret } = await import('../../config/secret.ts');
  let host: string;
  let port: number;
  if (scheme === 'connector') {
    const domain = u.url.slice('connector://'.length).replace(/\/.*$/, '');
    host = u.connector?.host ?? '';
    port = u.connector?.port ?? 25;
    if (!host) {
      const { recordsOf } = await import('../../diagnostics/dns/client.ts');
      const mx = await opts.dns.query(domain, 'MX');
      const best = recordsOf(mx, 'MX').sort((a, b) => a.data.preference - b.data.preference)[0];
      if (!best) return { trouble: `no MX for ${domain} (DNS ${mx.rcode}): set connector.host` };
      host = best.data.exchange;
    }
  } else {
    const url = new URL(u.url.replace(/^[a-z+]+:\/\//i, 'smtp://'));
    host = url.hostname.replace(/^\[|\]$/g, '');
    port = url.port ? Number(url.port) : scheme === 'smtps' ? 465 : scheme === 'smtp' ? 25 : 587;
  }
  const usesBasic = u.auth === 'basic' || (u.auth === undefined && Boolean(u.username));
  let auth: Record<string, unknown> | undefined;
  if (usesBasic) auth = { user: u.username, pass: u.password === undefined ? '' : resolveSecret(u.password) };
  if (u.auth === 'xoauth2') {
    auth = { type: 'OAuth2', user: u.mailbox ?? u.username, accessToken: await upstreamToken(u, config, opts) };
  }
  const tls: Record<string, unknown> = { rejectUnauthorized: u.verifyCertificate, servername: /^[\d.:]+$/.test(host) ? undefined : host };
  if (u.ca) tls.ca = readFileSync(path.resolve(configDirOf(config), u.ca));
  return {
    options: {
      host, port, secure: scheme === 'smtps', requireTLS: scheme === 'smtp+starttls', ignoreTLS: scheme === 'smtp',
      name: u.heloName ?? config.hostnameResolved, auth, tls,
      // with credentials, log in or fail, even when the server offers no AUTH (auth-offer.ts):
      // "authenticated as" is said only after an accepted AUTH
      ...(auth ? { forceAuth: true, requireAuthOffer: true } : {}),
      connectionTimeout: opts.timeoutMs, greetingTimeout: opts.timeoutMs, socketTimeout: opts.timeoutMs,
    },
  };
}

/** A token for an OAuth2 upstream, as the relay gets it (same cache, same files); bounded in time. */
async function upstreamToken(u: UpstreamConfig, config: Config, opts: DoctorOptions): Promise<string> {
  const { createTokenProvider } = await import('../../m365/tokens.ts');
  const { createLogger } = await import('../../core/logger.ts');
  const tokens = createTokenProvider(u, { logger: createLogger({ level: 'error' }), mailroot: config.mailrootPath, configDir: configDirOf(config) });
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([tokens.getToken(), new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error('no token within the timeout')), opts.timeoutMs * 2); })]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * graph:// sends over HTTPS with Mail.Send: doctor gets a token as the relay would and reads what it
 * grants. Nothing is sent: Graph has no "verify" call short of sending, and reading the mailbox would
 * need a permission the relay does not need.
 */
async function checkGraph(u: UpstreamConfig, config: Config, opts: DoctorOptions, subject: string): Promise<DoctorItem> {
  const { tokenClaims, tokenGrants } = await import('../../m365/tokens.ts');
  let token: string;
  try {
    token = await upstreamToken(u, config, opts);
  } catch (e) {
    return { area: 'upstream', subject, state: 'problem', detail: `no token from Entra ID: ${(e as Error).message}` };
  }
  const { kind, grants } = tokenGrants(tokenClaims(token));
  const mailbox = /^graph:\/\/[^/]+\/(.+)$/.exec(u.url)?.[1] ?? '?';
  if (!grants.includes('Mail.Send')) {
    const fix = kind === 'application'
      ? 'add the Microsoft Graph application permission Mail.Send to the app registration and grant admin consent'
      : 'add the delegated permission Mail.Send and sign in again (smarthost m365 login)';
    return { area: 'upstream', subject, state: 'problem', detail: `token obtained, but it does not grant Mail.Send (${kind} permissions: ${grants.join(', ') || 'none'}): ${fix} (docs/microsoft-365.md)` };
  }
  return { area: 'upstream', subject, state: 'ok', detail: `token obtained with Mail.Send (${kind}) for sending as ${mailbox} (nothing was sent)` };
}

async function checkUpstream(u: UpstreamConfig, config: Config, opts: DoctorOptions): Promise<DoctorItem[]> {
  const items: DoctorItem[] = [];
  const subject = `${u.name} (${u.url})`;
  const host = /^[a-z+]+:\/\/([^/:]+)/i.exec(u.url)?.[1] ?? '';
  if (RETIRED_BPOS.test(host)) items.push({ area: 'upstream', subject, state: 'problem', detail: `${host} is a retired BPOS endpoint (switched off 2012): use smtp+starttls://smtp.office365.com:587` });
  const { basicAuthWarning } = await import('../../m365/basic-auth.ts');
  const countdown = basicAuthWarning(u, (opts.now ?? Date.now)());
  if (countdown) items.push({ area: 'upstream', subject, state: 'warning', detail: countdown });
  if (u.url.startsWith('graph://')) return [...items, await checkGraph(u, config, opts, subject)];
  if (u.url.startsWith('connector://') && u.connector?.clientCertificate) items.push(checkConnectorCertificate(u, config, (opts.now ?? Date.now)(), subject));
  let prepared;
  try {
    prepared = await transportOptions(u, config, opts);
  } catch (e) {
    return [...items, { area: 'upstream', subject, state: 'problem', detail: `cannot prepare the connection: ${(e as Error).message}` }];
  }
  if (prepared.trouble) return [...items, { area: 'upstream', subject, state: 'could-not-check', detail: prepared.trouble }];
  const nodemailer = (await import('nodemailer')).default;
  (await import('../../transports/auth-offer.ts')).installAuthOfferCheck();
  const transport = nodemailer.createTransport(prepared.options as never);
  const target = `${prepared.options!.host}:${prepared.options!.port}`;
  try {
    await transport.verify();
    const authWords = prepared.options!.auth ? `authenticated as ${(prepared.options!.auth as { user?: string }).user}` : 'no authentication configured';
    items.push({ area: 'upstream', subject, state: 'ok', detail: `${target} answered EHLO; ${authWords} (nothing was sent)` });
  } catch (e) {
    items.push({ area: 'upstream', subject, state: 'problem', detail: await describeSmtpError(e, target) });
  } finally {
    transport.close();
  }
  return items;
}

/**
 * A certificate-based inbound connector recognises the relay by the certificate it presents: it must
 * be readable, match its key, be in date, and name (CN or SAN) an accepted domain of the tenant, the
 * one the connector is set to (research m365.md §4.2). doctor cannot read the connector: it shows the
 * names so the admin can compare.
 */
export function checkConnectorCertificate(u: UpstreamConfig, config: Config, now: number, subject: string): DoctorItem {
  const dir = configDirOf(config);
  const certFile = path.resolve(dir, u.connector!.clientCertificate!);
  let cert: X509Certificate;
  let keyPem: string;
  try {
    // the certificate and its key may share one file, even run together without a line end
    const pem = readFileSync(certFile, 'utf8');
    cert = new X509Certificate(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem)?.[0] ?? pem);
    const keyText = u.connector!.clientKey ? readFileSync(path.resolve(dir, u.connector!.clientKey), 'utf8') : pem;
    keyPem = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----/.exec(keyText)?.[0] ?? keyText;
  } catch (e) {
    return { area: 'upstream', subject, state: 'problem', detail: `connector client certificate ${certFile} cannot be read: ${(e as Error).message}` };
  }
  const names = [/CN=([^\n,]+)/.exec(cert.subject)?.[1], ...(cert.subjectAltName ?? '').split(/,\s*/).map((n) => n.replace(/^DNS:/, ''))].filter((n): n is string => Boolean(n && !n.includes(':')));
  const domain = u.url.slice('connector://'.length).toLowerCase();
  const daysLeft = Math.floor((Date.parse(cert.validTo) - now) / 86_400_000);
  let keyMatches = false;
  try {
    keyMatches = cert.checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    keyMatches = false;
  }
  const named = `names ${[...new Set(names)].join(', ') || 'nothing'}`;
  if (!keyMatches) return { area: 'upstream', subject, state: 'problem', detail: `connector client certificate ${certFile}: no matching private key (connector.clientKey)` };
  if (daysLeft < 0) return { area: 'upstream', subject, state: 'problem', detail: `connector client certificate expired ${-daysLeft} day(s) ago (${named}): Microsoft 365 will stop recognising the relay (550 5.7.64 TenantAttribution)` };
  const matches = names.some((n) => n.toLowerCase() === domain || n.toLowerCase().endsWith(`.${domain}`) || (n.startsWith('*.') && domain.endsWith(n.slice(1).toLowerCase())));
  if (!matches) return { area: 'upstream', subject, state: 'warning', detail: `connector client certificate ${named}, none in ${domain}: the inbound connector must be set to a name in the certificate, and that name must be an accepted domain of the tenant` };
  if (daysLeft < 30) return { area: 'upstream', subject, state: 'warning', detail: `connector client certificate (${named}) expires in ${daysLeft} day(s): renew it and keep the same name` };
  return { area: 'upstream', subject, state: 'ok', detail: `connector client certificate ${named}, valid ${daysLeft} more day(s); the inbound connector must name it (an accepted domain)` };
}

async function describeSmtpError(e: unknown, target: string): Promise<string> {
  const err = e as { code?: string; responseCode?: number; response?: string; message?: string; authNotOffered?: string };
  if (err.authNotOffered) return err.authNotOffered;
  const { explainM365 } = await import('../../m365/errors.ts');
  // Microsoft's explanations only fit Microsoft's replies: other servers reuse the same codes.
  const microsoft = /(office365|outlook|microsoft)\.com|\.mx\.microsoft/i.test(target);
  const explained = microsoft && err.responseCode ? explainM365(err.responseCode, undefined, err.response ?? '') : undefined;
  const plus = explained ? ` — ${explained.meaning} ${explained.fix}` : '';
  if (err.code === 'EAUTH') return `${target} refused our credentials: ${err.response ?? err.message}${plus}`;
  if (err.code === 'ECONNECTION' || err.code === 'ETIMEDOUT' || err.code === 'ESOCKET' || err.code === 'EDNS') return `${target} not reachable (${err.code}): ${err.message}`;
  if (err.code === 'ETLS') return `${target}: TLS failed: ${err.message}`;
  return `${target}: ${err.response ?? err.message}${plus}`;
}

/** Local clock vs an HTTP Date header (1 s resolution), bounded by a timeout; offline → skipped. */
async function checkClock(opts: DoctorOptions): Promise<DoctorItem> {
  if (!opts.timeUrl) return { area: 'clock', subject: 'clock', state: 'skipped', detail: 'no --time-url to compare with' };
  const now = opts.now ?? Date.now;
  const before = now();
  let date: string | null;
  try {
    const res = await fetch(opts.timeUrl, { method: 'HEAD', signal: AbortSignal.timeout(opts.timeoutMs), redirect: 'manual' });
    date = res.headers.get('date');
  } catch (e) {
    return { area: 'clock', subject: opts.timeUrl, state: 'skipped', detail: `could not reach ${opts.timeUrl} (offline?): ${(e as Error).message}` };
  }
  const after = now();
  const remote = date ? Date.parse(date) : NaN;
  if (Number.isNaN(remote)) return { area: 'clock', subject: opts.timeUrl, state: 'could-not-check', detail: `${opts.timeUrl} sent no usable Date header` };
  // The Date header is truncated to the second: compare with the middle of the request, allow 2 s.
  const skewMs = (before + after) / 2 - (remote + 500);
  const seconds = Math.abs(Math.round(skewMs / 1000));
  const amount = seconds >= 120 ? `${Math.round(seconds / 60)} min` : `${seconds} s`;
  const words = `${amount} ${skewMs > 0 ? 'ahead of' : 'behind'} ${new URL(opts.timeUrl).host}`;
  if (Math.abs(skewMs) > 300_000) return { area: 'clock', subject: 'clock', state: 'problem', detail: `the local clock is ${words}: OAuth tokens, TLS certificates and Date headers go wrong; enable NTP` };
  if (Math.abs(skewMs) > 30_000) return { area: 'clock', subject: 'clock', state: 'warning', detail: `the local clock is ${words}: enable NTP` };
  return { area: 'clock', subject: 'clock', state: 'ok', detail: `within ${Math.max(2, Math.abs(Math.round(skewMs / 1000)))} s of ${new URL(opts.timeUrl).host}` };
}

/** A listener that accepts TLS 1.0/1.1 is said plainly (docs/devices.md): fine on a LAN, nowhere else. */
function legacyListeners(config: Config): DoctorItem[] {
  return config.listen.filter((l) => l.tls !== 'none' && l.tlsProfile === 'legacy').map((l) => ({
    area: 'tls' as const, subject: `listener ${l.address}:${l.port}`, state: 'warning' as const,
    detail: `${legacyWarning(`${l.address}:${l.port}`)}${l.address === '0.0.0.0' || l.address === '::' ? ' (it listens on every address of this machine: make sure the port is not forwarded from the internet)' : ''}`,
  }));
}

/** Runs every check; never throws for network reasons. */
export async function runDoctor(config: Config, opts: DoctorOptions): Promise<DoctorItem[]> {
  const [spf, upstreams, clock] = await Promise.all([
    checkSpf(config, opts),
    Promise.all(config.upstreams.map((u) => checkUpstream(u, config, opts))),
    checkClock(opts),
  ]);
  const items = [...spf, checkCertificate(config, (opts.now ?? Date.now)()), ...legacyListeners(config), ...upstreams.flat(), clock];
  const { ndrSenderWarnings, routeNdrWarnings } = await import('../../m365/ndr-sender.ts');
  for (const w of [...ndrSenderWarnings(config.upstreams, config.ndr.from, config.hostnameResolved), ...routeNdrWarnings(config.upstreams, config.routes, config.hostnameResolved)]) items.push({ area: 'upstream', subject: 'ndr.from', state: 'warning', detail: w });
  if (config.upstreams.length === 0) items.push({ area: 'upstream', subject: 'upstreams', state: 'warning', detail: 'no upstream configured: mail waits in the queue' });
  return items;
}

/** The sign-in host the relay's tokens come from (a national cloud, a test endpoint): the clock that matters for them. */
export function signInHost(config: Config): string {
  const authority = config.upstreams.find((u) => u.oauth)?.oauth?.authority ?? 'https://login.microsoftonline.com';
  return `${authority.replace(/\/+$/, '')}/`;
}

const MARK: Record<DoctorState, string> = { ok: '✓', warning: '!', problem: '✗', 'could-not-check': '?', skipped: '·' };

export function register(program: Command): void {
  program
    .command('doctor')
    .description('check a configuration against the world: SPF for the sending path, TLS certificate, upstream reachability and auth, clock')
    .option('--config <file>', 'YAML config file (default: SMARTHOST_CONFIG, else /etc/smarthost/smarthost.yaml, else ./smarthost.yaml)')
    .option('--public-ip <ip>', 'the relay\'s public address, for connector/direct delivery SPF checks')
    .option('--resolver <host[:port]>', 'DNS server to ask (repeatable); default: the system\'s', (v: string, prev: string[] = []) => [...prev, v])
    .option('--timeout <ms>', 'timeout for each DNS query, connection and HTTP request', (v: string) => Number(v), 10_000)
    .option('--time-url <url>', 'URL whose Date header the local clock is compared with (default: the sign-in host of the first OAuth2 upstream, else https://login.microsoftonline.com/)')
    .option('--no-clock', 'skip the clock check')
    .option('--json', 'print the result as JSON')
    .action(async (o: { config?: string; publicIp?: string; resolver?: string[]; timeout: number; timeUrl?: string; clock: boolean; json?: boolean }) => {
      const { SmarthostError } = await import('../../core/errors.ts');
      if (!Number.isInteger(o.timeout) || o.timeout < 50) throw new SmarthostError('SH_USAGE', '--timeout must be a whole number of milliseconds (50 or more)');
      const net = await import('node:net');
      if (o.publicIp && !net.isIP(o.publicIp)) throw new SmarthostError('SH_USAGE', `--public-ip "${o.publicIp}" is not an IP address`);
      const { loadConfig } = await import('../../config/load.ts');
      const { createDnsClient, parseServer } = await import('../../diagnostics/dns/client.ts');
      const { requireConfig } = await import('../../config/locate.ts');
      const config = loadConfig(requireConfig(o.config));
      let servers;
      try {
        servers = o.resolver?.map(parseServer);
      } catch (e) {
        throw new SmarthostError('SH_USAGE', `--resolver: ${(e as Error).message}`);
      }
      const dns = createDnsClient({ servers, timeoutMs: Math.min(o.timeout, 5000) });
      const items = await runDoctor(config, { publicIp: o.publicIp, dns, timeoutMs: o.timeout, timeUrl: o.clock ? o.timeUrl ?? signInHost(config) : undefined });
      if (o.json) process.stdout.write(`${JSON.stringify({ config: config.source, items }, null, 2)}\n`);
      else {
        const lines = [`smarthost doctor: ${config.source}`, ''];
        for (const i of items) lines.push(`${MARK[i.state]} ${i.area.padEnd(8)} ${i.subject}`, `    ${i.detail}`);
        const count = (s: DoctorState): number => items.filter((i) => i.state === s).length;
        lines.push('', `${count('problem')} problem(s), ${count('warning')} warning(s), ${count('could-not-check')} could not be checked, ${count('ok')} ok`);
        process.stdout.write(`${lines.join('\n')}\n`);
      }
      process.exitCode = items.some((i) => i.state === 'problem') ? 1 : items.some((i) => i.state === 'could-not-check') ? 3 : 0;
    });
}
