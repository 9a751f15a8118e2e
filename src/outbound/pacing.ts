/**
 * Upstream pacing (per upstream, in memory): messages per minute and recipients per rolling 24 hours.
 * A submission is reserved before it is sent, so parallel deliveries never overshoot. When the budget
 * is spent the message waits in the queue (it is not failed); waitUntil() says until when.
 * Counters start from zero when the relay restarts.
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
