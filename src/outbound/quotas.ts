/**
 * Sending budgets as Microsoft counts them: per mailbox (messages/min, recipients/day), per Graph
 * app + mailbox (Retry-After) and per tenant (external recipients), shared by every upstream that
 * sends as that mailbox (src/m365/quota.ts names the budgets). The delivery manager asks it before
 * each submission (reserve, heldUntil) and tells it what Microsoft answered (hold).
 *
 * A spent budget makes messages wait, never fail: a hold says until when, and every message of that
 * mailbox (or app, or the tenant's external recipients) waits for it, not only the one refused.
 * Counts and holds survive a restart (snapshot/restore, kept in mailroot/pacing.json).
 */
import type { UpstreamConfig } from '../config/sections/upstreams.ts';
import { BACKOFF_MAX_MS, quotaKeys, type QuotaKeys } from '../m365/quota.ts';
import { UpstreamPacer } from './pacing.ts';

type Limits = Pick<UpstreamConfig, 'maxMessagesPerMinute' | 'maxRecipientsPerDay' | 'maxRecipientsPerMessage'>;

export interface Hold {
  until: number;
  reason: string;
  /** Consecutive back-offs (4.7.5xx doubles the wait). */
  streak?: number;
}

/** One budget as the console shows it. */
export interface QuotaStatus {
  key: string;
  /** Upstreams drawing on it. */
  upstreams: string[];
  messagesLastMinute: number;
  maxMessagesPerMinute?: number;
  recipientsLast24h: number;
  maxRecipientsPerDay?: number;
  /** Sending resumes at (epoch ms) and why it waits; absent when it may send. */
  heldUntil?: number;
  reason?: string;
}

const minOf = (values: Array<number | undefined>): number | undefined => {
  const set = values.filter((v): v is number => typeof v === 'number');
  return set.length ? Math.min(...set) : undefined;
};

export class QuotaBoard {
  private keys = new Map<string, QuotaKeys>();
  private pacers = new Map<string, UpstreamPacer>();
  private limits = new Map<string, Limits>();
  private holds = new Map<string, Hold>();

  constructor(upstreams: readonly UpstreamConfig[]) {
    const byKey = new Map<string, UpstreamConfig[]>();
    for (const u of upstreams) {
      const k = quotaKeys(u);
      this.keys.set(u.name, k);
      byKey.set(k.mailbox, [...(byKey.get(k.mailbox) ?? []), u]);
    }
    // a mailbox shared by several upstreams: the strictest limit of any of them holds for all
    for (const [key, group] of byKey) {
      const limits = {
        maxMessagesPerMinute: minOf(group.map((u) => u.maxMessagesPerMinute)),
        maxRecipientsPerDay: minOf(group.map((u) => u.maxRecipientsPerDay)),
        maxRecipientsPerMessage: minOf(group.map((u) => u.maxRecipientsPerMessage)),
      };
      this.limits.set(key, limits);
      this.pacers.set(key, new UpstreamPacer(limits));
    }
  }

  keysOf(upstream: string): QuotaKeys | undefined {
    return this.keys.get(upstream);
  }

  private pacerOf(upstream: string): UpstreamPacer | undefined {
    const k = this.keys.get(upstream);
    return k ? this.pacers.get(k.mailbox) : undefined;
  }

  /** Largest batch this upstream may submit now (0 = wait); reserved on the shared mailbox budget. */
  reserve(upstream: string, now: number, wanted: number): number {
    return this.pacerOf(upstream)?.reserve(now, wanted) ?? wanted;
  }

  /** When the mailbox budget lets this upstream send again. */
  pacedUntil(upstream: string, now: number): number {
    return this.pacerOf(upstream)?.waitUntil(now) ?? now;
  }

  /** A hold in force for this upstream's mailbox or Graph app (not the tenant's external one). */
  heldUntil(upstream: string, now: number): Hold | undefined {
    const k = this.keys.get(upstream);
    if (!k) return undefined;
    let worst: Hold | undefined;
    for (const key of [k.mailbox, k.app]) {
      const h = key ? this.holds.get(key) : undefined;
      if (h && h.until > now && (!worst || h.until > worst.until)) worst = h;
    }
    return worst;
  }

  /** The tenant's external-recipient hold, if in force: recipients outside `internalDomains` wait. */
  externalHeld(upstream: string, now: number): Hold | undefined {
    const k = this.keys.get(upstream);
    const h = k?.tenant ? this.holds.get(`${k.tenant}:external`) : undefined;
    return h && h.until > now ? h : undefined;
  }

  isExternal(upstream: string, recipient: string): boolean {
    const k = this.keys.get(upstream);
    const domain = recipient.slice(recipient.lastIndexOf('@') + 1).toLowerCase();
    return !k || !k.internalDomains.includes(domain);
  }

  /**
   * Microsoft said a budget is spent: hold it. scope 'mailbox' / 'app' / 'tenant' (external
   * recipients). A back-off doubles with each consecutive one, up to an hour. Returns the hold.
   */
  hold(upstream: string, scope: 'mailbox' | 'app' | 'tenant', now: number, ms: number, reason: string, backoff = false): Hold | undefined {
    const k = this.keys.get(upstream);
    const key = scope === 'mailbox' ? k?.mailbox : scope === 'app' ? k?.app ?? k?.mailbox : k?.tenant ? `${k.tenant}:external` : undefined;
    if (!key) return undefined;
    const prev = this.holds.get(key);
    const streak = backoff ? (prev?.streak ?? 0) + 1 : undefined;
    const wait = backoff ? Math.min(BACKOFF_MAX_MS, ms * 2 ** ((streak ?? 1) - 1)) : ms;
    const h: Hold = { until: Math.max(now + wait, prev && prev.until > now ? prev.until : 0), reason, streak };
    this.holds.set(key, h);
    return h;
  }

  /** A submission got through: back-off streaks of this upstream's budgets end. */
  succeeded(upstream: string): void {
    const k = this.keys.get(upstream);
    for (const key of [k?.mailbox, k?.app]) {
      const h = key ? this.holds.get(key) : undefined;
      if (key && h?.streak) this.holds.set(key, { ...h, streak: 0 });
    }
  }

  /** Upstreams that share this upstream's mailbox (scope 'mailbox') or tenant ('tenant'), itself included. */
  siblings(upstream: string, scope: 'mailbox' | 'tenant'): string[] {
    const k = this.keys.get(upstream);
    if (!k) return [upstream];
    const want = scope === 'mailbox' ? k.mailbox : k.tenant;
    if (!want) return [upstream];
    return [...this.keys].filter(([, v]) => (scope === 'mailbox' ? v.mailbox : v.tenant) === want).map(([name]) => name);
  }

  /** Counts and holds, for pacing.json: `{ KEY: [[minuteEnd, count]…], "holds": { KEY: Hold } }`. */
  snapshot(now: number): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [key, p] of this.pacers) out[key] = p.snapshot(now);
    const holds: Record<string, Hold> = {};
    for (const [key, h] of this.holds) if (h.until > now) holds[key] = h;
    out.holds = holds;
    return out;
  }

  /** Restores a snapshot; counts saved by an older version under the upstream's name still count. */
  restore(saved: Record<string, unknown>, now: number): void {
    for (const [name, k] of this.keys) {
      if (saved[k.mailbox] === undefined && saved[name] !== undefined) this.pacers.get(k.mailbox)?.restore(saved[name], now);
    }
    for (const [key, p] of this.pacers) p.restore(saved[key], now);
    const holds = saved.holds;
    if (holds && typeof holds === 'object') {
      for (const [key, h] of Object.entries(holds as Record<string, Hold>)) {
        if (h && typeof h.until === 'number' && h.until > now && typeof h.reason === 'string') this.holds.set(key, { until: h.until, reason: h.reason, streak: typeof h.streak === 'number' ? h.streak : undefined });
      }
    }
  }

  list(now: number): QuotaStatus[] {
    const out: QuotaStatus[] = [];
    for (const [key, p] of this.pacers) {
      const upstreams = [...this.keys].filter(([, k]) => k.mailbox === key).map(([n]) => n);
      const limits = this.limits.get(key) ?? {};
      const usage = p.usage(now);
      const held = upstreams.map((u) => this.heldUntil(u, now)).filter((h): h is Hold => Boolean(h)).sort((a, b) => b.until - a.until)[0];
      const paced = p.waitUntil(now);
      const status: QuotaStatus = { key, upstreams, messagesLastMinute: usage.messages, maxMessagesPerMinute: limits.maxMessagesPerMinute, recipientsLast24h: usage.recipients, maxRecipientsPerDay: limits.maxRecipientsPerDay };
      if (held) Object.assign(status, { heldUntil: held.until, reason: held.reason });
      else if (paced > now) Object.assign(status, { heldUntil: paced, reason: 'sending pace (messages per minute / recipients per day)' });
      out.push(status);
    }
    for (const [key, h] of this.holds) {
      if (key.endsWith(':external') && h.until > now) out.push({ key, upstreams: [...this.keys].filter(([, k]) => `${k.tenant}:external` === key).map(([n]) => n), messagesLastMinute: 0, recipientsLast24h: 0, heldUntil: h.until, reason: h.reason });
    }
    return out;
  }
}
