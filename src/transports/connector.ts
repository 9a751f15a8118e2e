/**
 * Connector / direct-send transport (connector://DOMAIN): SMTP to the tenant's own MX endpoint on
 * port 25, without authentication, STARTTLS required, the certificate verified, optionally presenting
 * a client certificate for a certificate-based inbound connector.
 *   host       connector.host, or the MX of DOMAIN looked up in DNS (lowest preference first; both
 *              the legacy <domain>.mail.protection.outlook.com and the DNSSEC *.mx.microsoft forms);
 *   connector  an inbound connector that recognises this relay (static IP or certificate CN/SAN in an
 *              accepted domain) lets any From in an accepted domain reach internal and external recipients;
 *   direct send without a connector reaches only recipients with mailboxes in the tenant, and a tenant
 *              with RejectDirectSend refuses it with 550 5.7.68: the outcome reasons say so.
 * No copy lands in Sent Items on this route. Reports per-recipient outcomes; never throws for SMTP
 * failures. Errors that mean the route is broken (5.7.64 attribution, 5.7.68, banned IP…) are
 * routeBroken, so the delivery manager parks the upstream instead of bouncing.
 */
import { promises as dns } from 'node:dns';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import nodemailer from 'nodemailer';
import type { Outcome, OutboundMessage, Transport } from '../core/types.ts';
import type { Logger } from '../core/logger.ts';
import { sanitizeText } from '../core/errors.ts';
import type { UpstreamConfig } from '../config/sections/upstreams.ts';
import { explainM365, formatExplanation } from '../m365/errors.ts';
import { createLineNormalizer } from './line-normalizer.ts';
import { watchFinalDot } from './final-dot.ts';
import { sendRaw } from './raw-send.ts';

export interface ConnectorDeps {
  logger: Logger;
  /** Name given in EHLO; upstream.heloName wins. */
  hostname: string;
  /** MX lookup, injectable for tests (default: the system resolver). */
  resolveMx?: (domain: string) => Promise<{ exchange: string; priority: number }[]>;
  now?: () => number;
  /** Folder relative certificate/ca paths are resolved against (the config file's); default: cwd. */
  configDir?: string;
}

const DIRECT_SEND_NOTE = 'Without an inbound connector this is direct send: it reaches only recipients with mailboxes in the tenant, and tenants with RejectDirectSend refuse it (550 5.7.68).';

interface SmtpError { responseCode?: number; response?: string; code?: string; command?: string; message?: string }

export function createConnectorTransport(upstream: UpstreamConfig, deps: ConnectorDeps): Transport {
  const domain = /^connector:\/\/([^/:?]+)/.exec(upstream.url)?.[1] ?? '';
  const settings = upstream.connector ?? { port: 25 };
  const port = settings.port ?? 25;
  const resolveMx = deps.resolveMx ?? ((d: string) => dns.resolveMx(d));
  const now = deps.now ?? Date.now;
  const file = (p: string) => path.resolve(deps.configDir ?? '', p);
  const ca = upstream.ca ? readFileSync(file(upstream.ca), 'utf8') : undefined;
  const certFile = upstream.connector?.clientCertificate ? file(upstream.connector.clientCertificate) : undefined;
  const clientCert = certFile ? pemBlocks(readFileSync(certFile, 'utf8'), 'CERTIFICATE', certFile) : undefined;
  const keyFile = upstream.connector?.clientKey ? file(upstream.connector.clientKey) : certFile;
  const clientKey = keyFile && certFile ? pemBlocks(readFileSync(keyFile, 'utf8'), 'PRIVATE KEY', keyFile) : undefined;

  async function hosts(): Promise<string[]> {
    if (upstream.connector?.host) return [upstream.connector.host];
    const mx = await resolveMx(domain);
    if (!mx.length) throw Object.assign(new Error(`${domain} has no MX record`), { code: 'EDNS' });
    return mx.sort((a, b) => a.priority - b.priority).map((m) => m.exchange);
  }

  function transportTo(host: string) {
    return nodemailer.createTransport({
      host, port, secure: false, requireTLS: true, name: upstream.heloName ?? deps.hostname,
      connectionTimeout: 30_000, greetingTimeout: 30_000, socketTimeout: upstream.timeout * 1000,
      tls: { rejectUnauthorized: upstream.verifyCertificate, ca, cert: clientCert, key: clientCert ? clientKey : undefined, minVersion: 'TLSv1.2', servername: /^[\d.]+$|:/.test(host) ? undefined : host },
    });
  }

  function outcome(recipient: string, host: string, o: Omit<Outcome, 'recipient' | 'transport' | 'at' | 'remoteMta'>): Outcome {
    return { recipient, transport: 'connector', remoteMta: host, at: new Date(now()).toISOString(), ...o };
  }

  function fromError(recipient: string, host: string, e: SmtpError, handedOver = false): Outcome {
    const text = sanitizeText(e.response ?? e.message ?? String(e));
    // First: after the final dot, no reply is "Microsoft may have it", whatever the error's words
    // (a TLS alert then must not read as "nothing was sent in clear").
    if (!e.responseCode && handedOver) {
      return outcome(recipient, host, { action: 'delayed', status: '4.4.1', diagnostic: text, possibleDuplicate: true, reason: `The connection to ${host} was lost after the whole message was sent: Microsoft may have it already; it is retried and may arrive twice.` });
    }
    // A refused or missing STARTTLS is the route's problem, whatever the reply code around it.
    if (e.command === 'STARTTLS' || /STARTTLS|TLS/.test(e.message ?? '') && !e.response?.match(/^[45]\d\d [245]\.\d/)) {
      return outcome(recipient, host, { action: 'delayed', status: '4.7.5', diagnostic: text, reason: `The MX endpoint ${host} did not complete STARTTLS, which this upstream requires; nothing was sent in clear. (${text})` });
    }
    const code = e.responseCode;
    const status = /\b([245]\.\d{1,3}\.\d{1,3})\b/.exec(text)?.[1] ?? (code ? `${Math.floor(code / 100)}.0.0` : '4.4.1');
    const known = explainM365(code ?? 0, status, text);
    let reason = known ? formatExplanation(known) : undefined;
    if (e.code === 'EMESSAGE' && !code && /larger than allowed/i.test(e.message ?? '')) {
      // the MX endpoint's EHLO SIZE says it will refuse this message: permanent, found before sending
      return outcome(recipient, host, { action: 'failed', status: '5.3.4', diagnostic: text, reason: `The message is larger than ${host} accepts (the SIZE it announces), so it was not sent: ${text}` });
    }
    if (!code) {
      const tls = /STARTTLS|TLS/i.test(text) || e.code === 'ETLS';
      return outcome(recipient, host, { action: 'delayed', status: tls ? '4.7.5' : '4.4.1', diagnostic: text, reason: tls ? `The MX endpoint ${host} did not complete STARTTLS, which this upstream requires; nothing was sent in clear. (${text})` : `Could not talk to ${host}:${port} (${text}); the message stays in the queue and is retried.` });
    }
    if (/5\.7\.1\b|5\.4\.1\b|relay/i.test(text) && !known?.routeBroken) reason = `${reason ?? `The MX endpoint refused this recipient: ${text}.`} ${DIRECT_SEND_NOTE}`;
    if (known?.routeBroken) return outcome(recipient, host, { action: 'delayed', status, replyCode: code, diagnostic: text, reason, routeBroken: true });
    return outcome(recipient, host, { action: code >= 500 ? 'failed' : 'delayed', status, replyCode: code, diagnostic: text, reason });
  }

  return {
    kind: 'connector',
    name: upstream.name,
    async send(message: OutboundMessage): Promise<Outcome[]> {
      let list: string[];
      try {
        list = await hosts();
      } catch (e) {
        const text = sanitizeText((e as Error).message);
        return message.recipients.map((r) => outcome(r, domain, { action: 'delayed', status: '4.4.3', diagnostic: text, reason: `The MX record of ${domain} could not be looked up (${text}); set connector.host to the tenant's MX endpoint (Microsoft 365 admin center → Domains) or fix DNS.` }));
      }
      let last: Outcome[] = [];
      // Try each MX in preference order until one answers; an answer (even a refusal) ends the loop.
      for (const host of list) {
        const tx = transportTo(host);
        // Bare CR/LF become CRLF and long lines are folded (Exchange Online refuses bare LF: 550 5.6.11).
        const normalizer = createLineNormalizer();
        // A lost connection means "Microsoft may have it" only once the final dot was written to the
        // socket (final-dot.ts): an MX that stalled mid-DATA has an incomplete copy it discards.
        const dot = watchFinalDot(normalizer);
        const source = message.open() as Readable;
        source.on('error', (e) => normalizer.destroy(e));
        source.pipe(normalizer);
        try {
          const info = await sendRaw(tx, { from: message.mailFrom, to: message.recipients, size: message.size, use8BitMime: message.eightBit || undefined }, normalizer, message.id);
          const refused = new Map<string, SmtpError>();
          for (const r of (info as { rejectedErrors?: (SmtpError & { recipient: string })[] }).rejectedErrors ?? []) refused.set(r.recipient.toLowerCase(), r);
          const reply = sanitizeText(info.response ?? '250');
          return message.recipients.map((r) => {
            const err = refused.get(r.toLowerCase());
            if (err) return fromError(r, host, err);
            return outcome(r, host, { action: 'relayed', status: '2.0.0', replyCode: 250, diagnostic: reply });
          });
        } catch (e) {
          const err = e as SmtpError;
          source.destroy(); // a file the send did not read to its end is closed now, not at GC
          last = message.recipients.map((r) => fromError(r, host, err, dot.sent && (err.command === 'CONN' || err.command === 'DATA' || !err.command)));
          // An answer ends the loop; so does a connection lost after the final dot: the next MX
          // endpoint is the same tenant, and sending again at once would be the duplicate itself.
          if ((e as SmtpError).responseCode || last.some((o) => o.possibleDuplicate)) return last;
          deps.logger.warn({ upstream: upstream.name, host, err: (e as Error).message }, 'MX endpoint unreachable, trying the next');
        } finally {
          tx.close();
        }
      }
      return last;
    },
    async verify() {
      try {
        const [host] = await hosts();
        const tx = transportTo(host);
        try { await tx.verify(); } finally { tx.close(); }
        return { ok: true, detail: `${host}:${port} answered and completed STARTTLS` };
      } catch (e) {
        return { ok: false, detail: sanitizeText((e as Error).message) };
      }
    },
    async close() {},
  };
}

/** The PEM blocks of one kind in a file that may hold a certificate and its key together. */
function pemBlocks(text: string, kind: 'CERTIFICATE' | 'PRIVATE KEY', file: string): string {
  const re = kind === 'CERTIFICATE' ? /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g : /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----/g;
  const blocks = text.match(re);
  if (!blocks) throw new Error(`${file} holds no ${kind.toLowerCase()} in PEM form`);
  return blocks.join('\n') + '\n';
}
