/**
 * Per-client EHLO announcements and the memory of failed TLS handshakes (docs/devices.md).
 *  - devices.discardEhloKeywords: keywords not announced to listed clients (Postfix's
 *    smtpd_discard_ehlo_keyword_address_maps), optionally on some listener ports only;
 *  - devices.tlsFailureMemory: a client whose handshake failed is not offered STARTTLS for that long
 *    (Haraka's disable_for_failed_hosts), except on a listener with requireTls, where a client
 *    without TLS cannot send anyway and STARTTLS stays its only way in;
 *  - AUTH is announced on a plain-text session only when it can be used there (auth.allowInsecure),
 *    as Postfix's smtpd_tls_auth_only: a device that sees AUTH tries it and stops at 538.
 * Also turns a failed handshake into one log line naming the client, what it offered and the
 * setting that would let it in.
 */
import { inRanges, normalizeAddress, parseRange, type Range } from '../core/cidr.ts';
import type { Clock } from '../core/clock.ts';
import type { Config } from '../config/schema.ts';
import type { ListenerConfig } from '../config/sections/listen.ts';
import type { TlsFailure } from './connection.ts';
import { lowestVersion } from './tls-profile.ts';

export interface TlsFailureRecord {
  client: string;
  listener: string;
  at: string;
  /** STARTTLS is withheld from the client until then (absent when the memory is off). */
  until?: string;
  reason: string;
  offered: { versions: string[]; ciphers: string[] };
  advice: string;
}

interface CompiledDiscard { ranges: Range[]; keywords: string[]; ports: number[] }

/** Most client addresses remembered after a failed handshake (devices.tlsFailureMemory). */
export const MAX_REMEMBERED = 10_000;

const VERSION_ORDER = ['SSL 2.0 hello', 'SSL 3.0', 'TLS 1.0', 'TLS 1.1', 'TLS 1.2', 'TLS 1.3'];

export class DevicePolicy {
  private discard: CompiledDiscard[] = [];
  private failures = new Map<string, TlsFailureRecord & { untilMs: number }>();
  private config: Config;
  private clock: Clock;

  constructor(config: Config, clock: Clock) {
    this.config = config;
    this.clock = clock;
    this.update(config);
  }

  update(config: Config): void {
    this.config = config;
    this.discard = config.devices.discardEhloKeywords.map((d) => ({
      ranges: d.clients.map(parseRange).filter((r): r is Range => r !== undefined), keywords: d.keywords, ports: d.ports,
    }));
  }

  /** EHLO keywords not to announce to this client on this listener. */
  hidden(listener: ListenerConfig, port: number, remoteAddress: string, secure: boolean): Set<string> {
    const client = normalizeAddress(remoteAddress);
    const out = new Set<string>();
    for (const d of this.discard) {
      if (d.ports.length && !d.ports.includes(port) && !d.ports.includes(listener.port)) continue;
      if (inRanges(client, d.ranges)) for (const k of d.keywords) out.add(k);
    }
    if (!secure && !listener.requireTls && this.failedRecently(client)) out.add('STARTTLS');
    if (!secure && !this.config.auth.allowInsecure) out.add('AUTH');
    return out;
  }

  private failedRecently(client: string): boolean {
    const f = this.failures.get(client);
    if (!f) return false;
    if (f.untilMs > this.clock.now()) return true;
    this.failures.delete(client);
    return false;
  }

  /** Records a failed handshake; returns the record to log. */
  recordFailure(listener: ListenerConfig, where: string, failure: TlsFailure): TlsFailureRecord {
    const client = normalizeAddress(failure.remoteAddress);
    const memory = this.config.devices.tlsFailureMemory;
    const now = this.clock.now();
    const offered = { versions: failure.hello?.versions ?? [], ciphers: failure.hello?.ciphers ?? [] };
    const reason = describeError(failure, offered.versions.length > 0);
    const record: TlsFailureRecord = {
      client, listener: where, at: new Date(now).toISOString(), reason, offered,
      advice: advice(listener, where, offered.versions, failure, memory > 0),
    };
    if (memory > 0 && !listener.requireTls && failure.stage === 'starttls') {
      record.until = new Date(now + memory).toISOString();
      this.failures.delete(client); // re-inserted last: the map stays in order of last failure
      this.failures.set(client, { ...record, untilMs: now + memory });
    }
    // bounded: one entry per client address, expired ones dropped, and at most MAX_REMEMBERED
    // (the oldest go first), so clients failing from many addresses cannot grow it without end
    // (entries are in order of failure, so the expired ones are at the front: stop at the first live one)
    for (const [k, v] of this.failures) {
      if (v.untilMs > now && this.failures.size <= MAX_REMEMBERED) break;
      this.failures.delete(k);
    }
    return record;
  }

  /** Clients STARTTLS is withheld from now, for the console and the status API. */
  failedClients(): TlsFailureRecord[] {
    const now = this.clock.now();
    return [...this.failures.values()].filter((f) => f.untilMs > now).map(({ untilMs: _u, ...r }) => r);
  }
}

function describeError(failure: TlsFailure, sawHello: boolean): string {
  const e = failure.error;
  const openssl = (e.reason || e.message || '').replace(/^.*:SSL routines:[^:]*:/, '').replace(/:.*$/, '');
  if (!sawHello) return `the client closed the connection before sending a TLS ClientHello${openssl ? ` (${openssl})` : ''}`;
  return openssl || 'the TLS handshake failed';
}

/** The setting that would let this client in, in words. */
function advice(listener: ListenerConfig, where: string, versions: string[], failure: TlsFailure, memoryOn: boolean): string {
  const highest = versions.map((v) => VERSION_ORDER.indexOf(v)).filter((i) => i >= 0).sort((a, b) => b - a)[0];
  const min = VERSION_ORDER.indexOf(lowestVersion(listener.tlsProfile));
  const withhold = listener.tls === 'implicit'
    ? 'or point the device at a plain or STARTTLS listener'
    : `or withhold STARTTLS from it (devices.discardEhloKeywords: [{ clients: [${normalizeAddress(failure.remoteAddress)}], keywords: [STARTTLS] }]${memoryOn ? '' : ', or devices.tlsFailureMemory: 1d'}) so it sends in plain text on the LAN`;
  if (highest !== undefined && highest < min) {
    if (highest < VERSION_ORDER.indexOf('TLS 1.0')) return `the client offers nothing newer than ${VERSION_ORDER[highest]}, which no profile accepts: ${withhold}`;
    const profile = highest >= VERSION_ORDER.indexOf('TLS 1.2') ? 'intermediate' : 'legacy (LAN only)';
    return `the client offers at most ${VERSION_ORDER[highest]} and ${where} accepts ${lowestVersion(listener.tlsProfile)} and later: set tlsProfile: ${profile} on this listener, ${withhold}`;
  }
  if (/no shared cipher|no suitable|sigalg|signature/i.test(`${failure.error.message} ${failure.error.reason ?? ''}`) && listener.tlsProfile !== 'legacy') {
    return `no cipher suite in common: tlsProfile: legacy on this listener adds the old RSA suites (LAN only), ${withhold}`;
  }
  if (/alert (bad|unknown|unsupported) certificate|unknown ca|certificate/i.test(failure.error.message)) {
    return `the client refused the relay's certificate: give tls.cert/tls.key a certificate it trusts, ${withhold}`;
  }
  return withhold.replace(/^or /, '');
}
