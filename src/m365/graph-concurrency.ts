/**
 * Microsoft Graph's Outlook service limits allow an app **4 concurrent requests per mailbox**
 * ("Outlook service limits are evaluated for each app ID and mailbox combination", and the table
 * there: "4 concurrent requests", https://learn.microsoft.com/en-us/graph/throttling-limits#outlook-service-limits ;
 * research m365-quotas-ndr.md §3, which notes one version of the page reads "per app ID" alone). A fifth is answered `429 ApplicationThrottled` "Application is
 * over its MailboxConcurrency limit." — a wasted request that still counts against the app.
 *
 * So every graph:// upstream that uses the same app and mailbox (several routes, or a route and its
 * failover) draws on one set of 4 slots; each Graph request (sendMail, draft, attachment, upload
 * chunk, send) holds a slot until its answer arrives. The key is quota.ts's `app:CLIENTID:MAILBOX`:
 * a mailbox lives in one tenant, so the tenant adds nothing, and keying on it would split one budget
 * in two when two upstreams spell the same tenant differently (its ID and its domain).
 */
import type { UpstreamConfig } from '../config/sections/upstreams.ts';
import { quotaKeys } from './quota.ts';

/** Outlook's concurrent requests per app per mailbox. */
export const GRAPH_MAILBOX_CONCURRENCY = 4;

/** A counting semaphore, first come first served. */
export class RequestSlots {
  readonly limit: number;
  private used = 0;
  private waiting: Array<() => void> = [];

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Waits for a free slot; call the returned function once the request is answered. */
  async acquire(): Promise<() => void> {
    if (this.used < this.limit) this.used++;
    // a releasing request hands its slot straight to the first waiter (used stays the same)
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.used--;
    };
  }

  /** Requests in progress now. */
  inUse(): number {
    return this.used;
  }
}

/**
 * The request slots of each graph:// upstream, shared by the upstreams of the same app and mailbox.
 * The limit is 4, or less when an upstream of the group sets a lower maxConnections.
 */
export function graphRequestSlots(upstreams: readonly UpstreamConfig[]): Map<string, RequestSlots> {
  const groups = new Map<string, UpstreamConfig[]>();
  for (const u of upstreams) {
    const key = u.url.startsWith('graph://') ? quotaKeys(u).app : undefined;
    if (key) groups.set(key, [...(groups.get(key) ?? []), u]);
  }
  const out = new Map<string, RequestSlots>();
  for (const group of groups.values()) {
    const slots = new RequestSlots(Math.min(GRAPH_MAILBOX_CONCURRENCY, ...group.map((u) => u.maxConnections)));
    for (const u of group) out.set(u.name, slots);
  }
  return out;
}
