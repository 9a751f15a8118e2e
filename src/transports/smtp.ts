/**
 * SMTP transport: delivers to a smart host with nodemailer's pooled SMTP client.
 *
 * Upstream URL grammar (src/config/sections/upstreams.ts):
 *   smtp+starttls://host[:port]  STARTTLS required, port 587 by default
 *   smtps://host[:port]          implicit TLS, port 465 by default
 *   smtp://host[:port]           no TLS at all, port 25 by default
 * Certificates are verified unless verifyCertificate is false; `ca` adds trusted CAs.
 * Authentication: username/password (AUTH PLAIN or LOGIN, whichever the server offers), or XOAUTH2
 * with a token from opts.tokenProvider: after a 535 the provider is asked with renew and the message
 * sent exactly once more (a second refusal is reported, never looped); a token the provider cannot
 * get (TokenError) is reported with its plain-words reason.
 *
 * What it guarantees: send() never throws for SMTP or network failures; it returns one Outcome per
 * recipient: delivered (2xx), failed (5xx), delayed (4xx, connection failures as 4.4.1). Auth refusal
 * is delayed with routeBroken (the route is broken, not the message). A connection lost after the final
 * dot was written to the socket, before the reply, is delayed with possibleDuplicate (final-dot.ts). The message goes out with bare CR/LF turned
 * into CRLF and lines over 998 octets folded. Passwords and tokens are never logged (nodemailer
 * prints "/* secret *\/" in their place in traces).
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { format } from 'node:util';
import nodemailer from 'nodemailer';
import type { Logger } from '../core/logger.ts';
import { SmarthostError, sanitizeText } from '../core/errors.ts';
import type { OutboundMessage, Outcome, Transport } from '../core/types.ts';
import type { UpstreamConfig } from '../config/sections/upstreams.ts';
import { resolveSecret } from '../config/secret-value.ts';
import { createLineNormalizer } from './line-normalizer.ts';
import { installFastDotStuffing } from './dot-stuffing.ts';
import { sendRaw } from './raw-send.ts';
import { watchFinalDot } from './final-dot.ts';
import { HandoffJournals } from './handoff-journal.ts';
import { installAuthOfferCheck } from './auth-offer.ts';

export interface SmtpTransportOptions {
  logger: Logger;
  /** Our name for EHLO when the upstream has no heloName. */
  hostname: string;
  /** Access token source for auth: xoauth2; `renew` asks for a fresh token after a refusal. */
  tokenProvider?: (opts?: { renew?: boolean }) => Promise<string>;
  /** Receives every line of the SMTP dialogue (smarthost send --trace). */
  trace?: (line: string) => void;
  /** Don't pool connections (one-off sends). */
  pool?: boolean;
  /** Folder a relative `ca` path is resolved against (the config file's); default: cwd. */
  configDir?: string;
}

export interface ParsedSmtpUrl {
  scheme: 'smtp+starttls' | 'smtps' | 'smtp';
  host: string;
  port: number;
}

const DEFAULT_PORT = { 'smtp+starttls': 587, smtps: 465, smtp: 25 } as const;

/** Parses an smtp upstream URL; throws SH_CONFIG_INVALID with the reason. */
export function parseSmtpUrl(url: string): ParsedSmtpUrl {
  const m = /^(smtp\+starttls|smtps|smtp):\/\/(\[[^\]]+\]|[^:/?#]+)(?::(\d+))?\/?$/.exec(url.trim());
  if (!m) throw new SmarthostError('SH_CONFIG_INVALID', `upstream URL ${JSON.stringify(url)} is not smtp+starttls://host[:port], smtps://host[:port] or smtp://host[:port]`);
  const scheme = m[1] as ParsedSmtpUrl['scheme'];
  const host = m[2].replace(/^\[|\]$/g, '');
  return { scheme, host, port: m[3] ? Number(m[3]) : DEFAULT_PORT[scheme] };
}

/** Enhanced status from a reply ("550 5.7.1 …" → "5.7.1"), or the class default ("5.0.0"). */
export function enhancedStatus(reply: string | undefined, code: number | undefined): string {
  const m = reply ? /^\d{3}[ -](\d\.\d{1,3}\.\d{1,3})\b/.exec(reply.trim()) : null;
  if (m) return m[1];
  if (code && code >= 500) return '5.0.0';
  if (code && code >= 400) return '4.0.0';
  return '4.4.1';
}

interface SmtpError extends Error {
  code?: string;
  /** Set by auth-offer.ts: the server offered no AUTH (or no usable mechanism); why, in words. */
  authNotOffered?: string;
  responseCode?: number;
  response?: string;
  command?: string;
  recipient?: string;
  rejectedErrors?: SmtpError[];
}

const NETWORK_CODES = new Set(['ECONNECTION', 'ETIMEDOUT', 'ESOCKET', 'EDNS', 'ETLS', 'EPROXY', 'ESTREAM']);

/**
 * A TokenError from src/m365/tokens.ts (code SH_TOKEN; nodemailer renames the code to EAUTH and keeps
 * ours as originalCode). Recognised by shape so that loading this transport does not load msal.
 */
function isTokenError(err: unknown): err is SmarthostError & { routeBroken?: boolean } {
  return err instanceof SmarthostError && (err.code === 'SH_TOKEN' || (err as { originalCode?: string }).originalCode === 'SH_TOKEN');
}

/** A trace logger in the shape nodemailer expects (bunyan-like levels, printf-style messages). */
function traceLogger(trace: (line: string) => void) {
  const write = (_entry: unknown, msg: string, ...args: unknown[]) => trace(format(msg, ...args));
  return { trace: write, debug: write, info: write, warn: write, error: write, fatal: write };
}

/** The upstream's `ca` file; a file that cannot be read is a configuration error naming it. */
function readCa(upstream: UpstreamConfig, configDir: string | undefined): Buffer {
  const file = path.resolve(configDir ?? '.', upstream.ca!);
  try {
    return readFileSync(file);
  } catch (e) {
    throw new SmarthostError('SH_CONFIG_READ', `upstream ${upstream.name}: ca: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

export function createSmtpTransport(upstream: UpstreamConfig, opts: SmtpTransportOptions): Transport & { readonly url: ParsedSmtpUrl } {
  // nodemailer's dot-stuffing loops over every byte in JavaScript; swapped for an identical, faster one.
  installFastDotStuffing();
  // credentials configured are used or the delivery fails, never dropped (auth-offer.ts)
  installAuthOfferCheck();
  const url = parseSmtpUrl(upstream.url);
  const authMode = upstream.auth ?? (upstream.username ? 'basic' : 'none');
  let auth: Record<string, unknown> | undefined;
  // nodemailer renews by itself after a 334 error challenge (Google's style): then it has had its one renewal
  let renewalsAfterChallenge = 0;
  if (authMode === 'basic') {
    if (!upstream.username || !upstream.password) throw new SmarthostError('SH_CONFIG_INVALID', `upstream ${upstream.name}: basic auth needs username and password`);
    let pass: string;
    try {
      pass = resolveSecret(upstream.password);
    } catch (e) {
      throw new SmarthostError('SH_SECRET_MISSING', `upstream ${upstream.name}: password: ${(e as Error).message}`);
    }
    auth = { user: upstream.username, pass };
  } else if (authMode === 'xoauth2') {
    const provider = opts.tokenProvider;
    const mailbox = upstream.mailbox ?? upstream.username;
    if (!provider || !mailbox) throw new SmarthostError('SH_CONFIG_INVALID', `upstream ${upstream.name}: xoauth2 needs a mailbox and a token source`);
    auth = {
      type: 'OAuth2',
      user: mailbox,
      // The token source caches and renews; an `expires` already past makes nodemailer ask it on every
      // login instead of keeping its own copy (0 would mean "never expires" to nodemailer).
      provisionCallback: (_user: string, renew: boolean, cb: (err: Error | null, token?: string, expires?: number) => void) => {
        if (renew) renewalsAfterChallenge++;
        provider({ renew }).then((t) => cb(null, t, 1), (e: Error) => cb(e));
      },
    };
  }
  const timeoutMs = upstream.timeout * 1000;
  const pooled = opts.pool !== false;
  const journals = new HandoffJournals();
  const transporter = nodemailer.createTransport({
    host: url.host,
    port: url.port,
    secure: url.scheme === 'smtps',
    requireTLS: url.scheme === 'smtp+starttls',
    ignoreTLS: url.scheme === 'smtp',
    name: upstream.heloName ?? opts.hostname,
    auth,
    ...(auth ? { forceAuth: true, requireAuthOffer: true } : {}),
    tls: {
      // never below TLS 1.2 upstream, whatever a legacy inbound listener or a --tls-min-v1.0 flag
      // allows (Exchange Online refuses older: 421 4.7.66; docs/devices.md)
      minVersion: 'TLSv1.2',
      rejectUnauthorized: upstream.verifyCertificate,
      ca: upstream.ca ? readCa(upstream, opts.configDir) : undefined,
      servername: isIP(url.host) ? undefined : url.host,
    },
    ...(pooled ? { pool: true, maxConnections: upstream.maxConnections, maxMessages: upstream.maxMessagesPerConnection } : {}),
    connectionTimeout: Math.min(timeoutMs, 60_000),
    greetingTimeout: Math.min(timeoutMs, 60_000),
    socketTimeout: timeoutMs,
    logger: opts.trace ? traceLogger(opts.trace) : false,
    debug: Boolean(opts.trace),
  } as Parameters<typeof nodemailer.createTransport>[0]);

  const remoteMta = url.host;
  const at = () => new Date().toISOString();
  const outcome = (recipient: string, fields: Partial<Outcome> & Pick<Outcome, 'action' | 'status'>): Outcome =>
    ({ recipient, transport: 'smtp', remoteMta, at: at(), ...fields });

  /** Outcome for a reply-bearing or network error applying to one recipient. */
  function fromError(recipient: string, err: SmtpError, dataHandedOver: boolean): Outcome {
    const reply = err.response ? sanitizeText(err.response) : undefined;
    const code = err.responseCode;
    if (isTokenError(err)) {
      // no token to offer (revoked sign-in, secret refused…): Entra ID's reason, in plain words
      return outcome(recipient, { action: 'delayed', status: '4.7.0', diagnostic: sanitizeText(err.message), routeBroken: err.routeBroken || undefined, reason: err.message });
    }
    if (err.code === 'EAUTH' && err.authNotOffered) {
      return outcome(recipient, { action: 'delayed', status: '4.7.0', diagnostic: sanitizeText(err.authNotOffered), routeBroken: true, reason: `${upstream.name}: ${err.authNotOffered}` });
    }
    if (err.code === 'EAUTH') {
      return outcome(recipient, { action: 'delayed', status: '4.7.0', replyCode: code, diagnostic: reply ?? sanitizeText(err.message), routeBroken: true, reason: `${upstream.name} refused our credentials (${upstream.mailbox ?? upstream.username ?? 'no user'})` });
    }
    if (err.code === 'EMESSAGE' && !code && /larger than allowed/i.test(err.message)) {
      // the upstream's EHLO SIZE says it will refuse this message: a permanent failure, found before sending
      return outcome(recipient, { action: 'failed', status: '5.3.4', diagnostic: sanitizeText(`${err.message} (the upstream's advertised SIZE limit)`) });
    }
    if (code && code >= 500 && code !== 503) {
      return outcome(recipient, { action: 'failed', status: enhancedStatus(reply, code), replyCode: code, diagnostic: reply });
    }
    if (code && code >= 400) {
      return outcome(recipient, { action: 'delayed', status: enhancedStatus(reply, code), replyCode: code, diagnostic: reply });
    }
    const network = !err.code || NETWORK_CODES.has(err.code);
    const lostAfterDot = network && dataHandedOver;
    return outcome(recipient, {
      action: 'delayed',
      status: err.code === 'ETLS' ? '4.7.5' : '4.4.1',
      diagnostic: sanitizeText(`${err.code ?? 'error'}: ${err.message}`),
      possibleDuplicate: lostAfterDot || undefined,
      reason: lostAfterDot ? 'the connection was lost after the whole message was sent, before the reply: the upstream may have it already' : undefined,
    });
  }

  /**
   * Exchange Online answers an expired or revoked XOAUTH2 token with a plain `535 5.7.3` (no 334
   * challenge, so nodemailer never asks for a new one): ask the token source for a fresh token and
   * send once more. A refusal of the fresh token is reported (routeBroken), never looped; SMTP AUTH
   * disabled (5.7.139) and Basic-auth-off (5.7.30) are not token problems and are not retried.
   */
  async function send(message: OutboundMessage): Promise<Outcome[]> {
    const challengeRenewals = renewalsAfterChallenge;
    const first = await attempt(message);
    if (authMode !== 'xoauth2' || !first.retryWithFreshToken || renewalsAfterChallenge !== challengeRenewals) return first.outcomes;
    try {
      await opts.tokenProvider!({ renew: true });
    } catch (e) {
      return message.recipients.map((r) => fromError(r, e as SmtpError, false));
    }
    opts.logger.info({ upstream: upstream.name }, 'the upstream refused our OAuth2 token: sending once more with a fresh one');
    return (await attempt(message)).outcomes;
  }

  function refusedToken(err: SmtpError): boolean {
    return err.code === 'EAUTH' && !isTokenError(err) && !err.authNotOffered && (err.responseCode === 535 || !err.responseCode)
      && !/5\.7\.139|5\.7\.30/.test(String(err.response ?? ''));
  }

  async function attempt(message: OutboundMessage): Promise<{ outcomes: Outcome[]; retryWithFreshToken?: boolean }> {
    const source = message.open() as NodeJS.ReadableStream & { destroy?: () => void };
    // A message the intake found CRLF-only with no line over 998 octets goes as it is; any other
    // gets bare CR/LF repaired and long lines folded on the way (line-normalizer.ts).
    let normalizer: Readable;
    if (message.wireSafe) normalizer = source as Readable;
    else {
      const fixer = createLineNormalizer();
      source.on('error', (e) => fixer.destroy(e));
      source.pipe(fixer);
      normalizer = fixer;
    }
    // possibleDuplicate only if the final dot was written to the socket (final-dot.ts)
    const dot = watchFinalDot(normalizer);
    try {
      // 8-bit content is declared (BODY=8BITMIME) when the upstream offers 8BITMIME; to one that does
      // not, it goes as it is, as most relays do (Microsoft 365 and the big providers all offer it)
      const info = await sendRaw(transporter, { from: message.mailFrom, to: message.recipients, size: message.size, use8BitMime: message.eightBit || undefined }, normalizer, message.id);
      const accepted = new Set((info.accepted ?? []).map(String));
      const rejectedErrors = ((info as { rejectedErrors?: SmtpError[] }).rejectedErrors ?? []);
      // first of all: the spool's journal learns what the upstream took (handoff-journal.ts)
      journals.note(message.journal, message.recipients.filter((r) => accepted.has(r) && !rejectedErrors.some((e) => e.recipient === r)),
        (err) => opts.logger.warn({ err, id: message.id }, 'could not note a delivery in the spool\'s journal (a crash now would send it again)'));
      const reply = sanitizeText(String(info.response ?? '250'));
      return { outcomes: message.recipients.map((r) => {
        const rej = rejectedErrors.find((e) => e.recipient === r);
        if (rej) return fromError(r, rej, false);
        if (accepted.has(r)) return outcome(r, { action: 'delivered', status: /^\d{3}[ -]2\./.test(reply) ? enhancedStatus(reply, 250) : '2.0.0', replyCode: 250, diagnostic: reply });
        return outcome(r, { action: 'delayed', status: '4.0.0', diagnostic: 'the upstream reported neither acceptance nor refusal for this recipient' });
      }) };
    } catch (e) {
      const err = e as SmtpError;
      source.destroy?.();
      opts.logger.debug({ upstream: upstream.name, code: err.code, command: err.command, response: err.response }, 'smtp send failed');
      const outcomes = message.recipients.map((r) => {
        const rej = err.rejectedErrors?.find((x) => x.recipient === r);
        return fromError(r, rej ?? err, dot.sent && (err.command === 'CONN' || err.command === 'DATA' || !err.command));
      });
      return { outcomes, retryWithFreshToken: refusedToken(err) };
    }
  }

  async function verify(): Promise<{ ok: boolean; detail: string }> {
    try {
      await transporter.verify();
      // with auth configured, verify() succeeds only after an accepted AUTH (forceAuth + auth-offer.ts)
      return { ok: true, detail: `${upstream.name}: connected to ${url.host}:${url.port}${auth ? ` and authenticated as ${String(auth.user)}` : ''}` };
    } catch (e) {
      const err = e as SmtpError;
      return { ok: false, detail: `${upstream.name}: ${sanitizeText(err.authNotOffered ?? err.response ?? err.message)}` };
    }
  }

  return {
    kind: 'smtp',
    name: upstream.name,
    url,
    send,
    verify,
    close: async () => {
      transporter.close();
      journals.close();
    },
  };
}
