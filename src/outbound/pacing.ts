/**
 * Upstream pacing (per upstream, in memory): messages per minute and recipients per rolling 24 hours.
 * A submission is reserved before it is sent, so parallel deliveries never overshoot. When the budget
 * is spent the message waits in the queue (it is not failed); waitUntil() says until when.
 * The rolling day's recipient counts survive a restart or a reload (snapshot()/restore(), saved by
 * the delivery manager in mailroot/pacing.json): Microsoft blocks a mailbox that goes past its
 * 10,000 recipients a day, whatever our process's age. The per-minute count starts from zero.
 */
import type { UpstreamConfig } from '../config/sections/upstreams.ts';

const MINUTE = 60_000;
const DAY = 86_400_000;

export class UpstreamPacer {
  private submissions: number[] = [];
  private recipients: Array<[number, number]> = [];
  private limits: Pick<UpstreamConfig, 'maxMessagesPerMinute' | 'maxRecipientsPerDay' | 'maxRecipientsPerMessage'>;

  constructor(limits: Pick<UpstreamConfig, 'maxMessagesPerMinute' | 'maxRecipientsPerDay' | 'maxRecipientsPerMessage'>) {
    this.limits = limits;
  }

  private prune(now: number): void {
    while (this.submissions.length && this.submissions[0] <= now - MINUTE) this.submissions.shift();
    while (this.recipients.length && this.recipients[0][0] <= now - DAY) this.recipients.shift();
  }

  private recipientsToday(): number {
    return this.recipients.reduce((n, [, c]) => n + c, 0);
  }

  /** Largest batch allowed now (0 = wait), given `wanted` recipients. Reserves it when > 0. */
  reserve(now: number, wanted: number): number {
    this.prune(now);
    const { maxMessagesPerMinute, maxRecipientsPerDay, maxRecipientsPerMessage } = this.limits;
    if (maxMessagesPerMinute && this.submissions.length >= maxMessagesPerMinute) return 0;
    let n = Math.min(wanted, maxRecipientsPerMessage ?? wanted);
    if (maxRecipientsPerDay) n = Math.min(n, maxRecipientsPerDay - this.recipientsToday());
    if (n <= 0) return 0;
    // only what a limit needs is remembered (a day of entries would otherwise pile up)
    if (maxMessagesPerMinute) this.submissions.push(now);
    if (maxRecipientsPerDay) this.recipients.push([now, n]);
    return n;
  }

  /**
   * The rolling day's recipient counts, summed per minute: at most 1,440 entries. Each minute is
   * stamped with its end, so a count restored from it never expires earlier than the real one.
   */
  snapshot(now: number): Array<[number, number]> {
    this.prune(now);
    const byMinute = new Map<number, number>();
    for (const [t, n] of this.recipients) {
      const end = Math.ceil(t / MINUTE) * MINUTE;
      byMinute.set(end, (byMinute.get(end) ?? 0) + n);
    }
    return [...byMinute];
  }

  /** Adds counts saved before a restart (snapshot()); entries that are malformed or over a day old are ignored. */
  restore(entries: unknown, now: number): void {
    if (!Array.isArray(entries)) return;
    for (const e of entries) {
      if (!Array.isArray(e) || e.length !== 2) continue;
      const [t, n] = e as [unknown, unknown];
      if (typeof t === 'number' && typeof n === 'number' && Number.isInteger(n) && n > 0 && t > now - DAY && t <= now + MINUTE) this.recipients.push([t, n]);
    }
    this.recipients.sort((a, b) => a[0] - b[0]);
  }

  /** Messages in the last minute and recipients in the rolling day (counted only where a limit is set). */
  usage(now: number): { messages: number; recipients: number } {
    this.prune(now);
    return { messages: this.submissions.length, recipients: this.recipientsToday() };
  }

  /** When a reservation can next succeed. */
  waitUntil(now: number): number {
    this.prune(now);
    const times: number[] = [];
    const { maxMessagesPerMinute, maxRecipientsPerDay } = this.limits;
    if (maxMessagesPerMinute && this.submissions.length >= maxMessagesPerMinute) times.push(this.submissions[0] + MINUTE);
    if (maxRecipientsPerDay && this.recipientsToday() >= maxRecipientsPerDay && this.recipients.length) times.push(this.recipients[0][0] + DAY);
    return times.length ? Math.max(...times) : now;
  }
}
