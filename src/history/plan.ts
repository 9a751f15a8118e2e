/**
 * Turns a batch of QueueEvents into the rows both backends write in one transaction.
 *
 * Pure and dialect-neutral: the SQLite backend loops prepared statements over the rows, the
 * PostgreSQL backend sends them as arrays (one statement per table). Rows for the same message
 * are merged so a multi-row upsert never touches a row twice (PostgreSQL refuses that).
 */
import type { QueueEvent } from '../core/types.ts';

export interface MessageRow {
  id: string; receivedAt: number; mailFrom: string; subject: string | null; size: number; client: string;
  source: string; upstream: string | null; headerFrom: string | null; recipients: string; status: string; updatedAt: number;
  /** Route(s) the message was given at accept time (routing), comma-separated when split. */
  route: string | null;
}
export interface RecipientRow { messageId: string; address: string; domain: string; receivedAt: number }
export interface EventRow {
  messageId: string; at: number; kind: string; upstream: string | null; recipient: string | null; action: string | null;
  status: string | null; replyCode: number | null; diagnostic: string | null; reason: string | null;
  durationMs: number | null; possibleDuplicate: number;
}
/** Later facts about a message; null fields leave the stored value alone. */
export interface MessageUpdate { id: string; status: string | null; reason: string | null; upstream: string | null; updatedAt: number }
export interface RecipientUpdate { messageId: string; address: string; status: string }

export interface BatchPlan {
  messages: MessageRow[];
  recipients: RecipientRow[];
  events: EventRow[];
  messageUpdates: MessageUpdate[];
  recipientUpdates: RecipientUpdate[];
}

const lower = (s: string): string => s.trim().toLowerCase();
const ms = (iso: string): number => {
  const t = Date.parse(iso);
  return Number.isFinite(t) ? t : Date.now();
};
const clip = (s: string | undefined, max = 2000): string | null => (s === undefined ? null : s.length > max ? s.slice(0, max) : s);

/** The part after the last '@', or '' for a local-only address. */
export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1);
}

function emptyEvent(messageId: string, at: number, kind: string): EventRow {
  return { messageId, at, kind, upstream: null, recipient: null, action: null, status: null, replyCode: null, diagnostic: null, reason: null, durationMs: null, possibleDuplicate: 0 };
}

export function planBatch(events: readonly QueueEvent[]): BatchPlan {
  const messages = new Map<string, MessageRow>();
  const recipients = new Map<string, RecipientRow>();
  const updates = new Map<string, MessageUpdate>();
  const rcptUpdates = new Map<string, RecipientUpdate>();
  const rows: EventRow[] = [];
  // Later facts win field by field; a null leaves the earlier fact of this batch in place.
  const update = (id: string, at: number, status: string | null, reason: string | null, upstream: string | null): void => {
    let u = updates.get(id);
    if (!u) {
      u = { id, status: null, reason: null, upstream: null, updatedAt: at };
      updates.set(id, u);
    }
    if (status !== null) u.status = status;
    if (reason !== null) u.reason = reason;
    if (upstream !== null) u.upstream = upstream;
    u.updatedAt = at;
  };
  for (const e of events) {
    if (e.type === 'accepted') {
      const env = e.envelope;
      const at = ms(e.at);
      const rcpts = env.recipients.map(lower);
      messages.set(e.id, {
        id: e.id, receivedAt: ms(env.receivedAt || e.at), mailFrom: lower(env.mailFrom), subject: clip(env.subject, 998),
        size: env.size, client: env.client.address, source: env.client.source, upstream: env.upstream ?? null,
        headerFrom: env.headerFrom ? lower(env.headerFrom) : null, recipients: JSON.stringify(rcpts), status: 'queued', updatedAt: at,
        route: env.route ?? null,
      });
      for (const address of rcpts) recipients.set(`${e.id}\n${address}`, { messageId: e.id, address, domain: domainOf(address), receivedAt: ms(env.receivedAt || e.at) });
      // header repairs made at accept (core/header-repair.ts) are part of how it was accepted
      const repaired = env.repairs?.length ? `; headers repaired: ${env.repairs.join('; ')}` : '';
      rows.push({ ...emptyEvent(e.id, at, 'accepted'), action: 'accepted', reason: clip(`from ${env.client.address || env.client.source}${repaired}`) });
    } else if (e.type === 'attempt') {
      const at = ms(e.at);
      let lastProblem: string | null = null;
      for (const o of e.outcomes) {
        const address = lower(o.recipient);
        rows.push({
          ...emptyEvent(e.id, at, 'attempt'), upstream: e.upstream, recipient: address, action: o.action, status: o.status,
          replyCode: o.replyCode ?? null, diagnostic: clip(o.diagnostic), reason: clip(o.reason), durationMs: Math.round(e.durationMs),
          possibleDuplicate: o.possibleDuplicate ? 1 : 0,
        });
        rcptUpdates.set(`${e.id}\n${address}`, { messageId: e.id, address, status: o.action });
        if (o.action !== 'delivered' && o.action !== 'relayed') lastProblem = clip(o.reason ?? o.diagnostic ?? `${o.status} ${o.action}`);
      }
      update(e.id, at, null, lastProblem, e.upstream ?? null);
    } else if (e.type === 'state') {
      const at = ms(e.at);
      rows.push({ ...emptyEvent(e.id, at, 'state'), action: e.state, reason: clip(e.reason) });
      update(e.id, at, e.state, clip(e.reason), null);
    } else if (e.type === 'upstream') {
      rows.push({ ...emptyEvent('', ms(e.at), 'upstream'), upstream: e.upstream, action: e.state, reason: clip(e.reason) });
    }
  }
  return {
    messages: [...messages.values()],
    recipients: [...recipients.values()],
    events: rows,
    messageUpdates: [...updates.values()],
    recipientUpdates: [...rcptUpdates.values()],
  };
}
