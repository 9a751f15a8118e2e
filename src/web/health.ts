/**
 * The relay's health in three words, each check with its reason in words: the one evaluation behind
 * /healthz, the console's dashboard and `smarthost status`.
 *
 *   ok        everything below is fine
 *   degraded  mail is still accepted, but an admin should look: an upstream failing or parked (or
 *             none configured), the oldest queued message older than web.health.queueAge, the
 *             history store failing, dropping or far behind
 *   down      new mail cannot be accepted: an SMTP listener is not listening or is at its connection
 *             limit (new clients hear 421), the spool cannot be written, or the queue cannot be read
 *
 * A check whose probe is not available is left out rather than guessed.
 */
import type { QueueEntryView, UpstreamStatus, WebServices, HealthProbes } from './services.ts';

export type HealthStatus = 'ok' | 'degraded' | 'down';

export interface HealthCheck {
  name: string;
  status: HealthStatus;
  reason: string;
}

export interface HealthReport {
  status: HealthStatus;
  at: string;
  checks: HealthCheck[];
  /** What could not be checked, and why (e.g. `smarthost status` with the console off). */
  notKnown?: string[];
}

/** History events waiting beyond this many means the writer is behind (about a minute of a busy relay). */
export const HISTORY_BEHIND_EVENTS = 5000;
export const DEFAULT_QUEUE_AGE_MS = 30 * 60_000;

const RANK: Record<HealthStatus, number> = { ok: 0, degraded: 1, down: 2 };

export function worst(checks: HealthCheck[]): HealthStatus {
  return checks.reduce<HealthStatus>((w, c) => (RANK[c.status] > RANK[w] ? c.status : w), 'ok');
}

export function minutes(ms: number): string {
  const m = ms / 60_000;
  if (m < 1) return `${Math.round(ms / 1000)} s`;
  if (m < 120) return `${Math.round(m)} min`;
  return `${(m / 60).toFixed(1)} h`;
}

/** The queue: readable, and its oldest message younger than the threshold. */
export function queueCheck(entries: QueueEntryView[], now: number, thresholdMs: number): HealthCheck {
  let oldest: QueueEntryView | undefined;
  for (const e of entries) if (!oldest || Date.parse(e.receivedAt) < Date.parse(oldest.receivedAt)) oldest = e;
  if (!oldest) return { name: 'queue', status: 'ok', reason: 'the queue is empty' };
  const age = Math.max(0, now - Date.parse(oldest.receivedAt));
  const base = `${entries.length} message${entries.length === 1 ? '' : 's'} waiting, the oldest for ${minutes(age)}`;
  if (age <= thresholdMs) return { name: 'queue', status: 'ok', reason: base };
  const why = oldest.lastReason ? `; its last reason: ${oldest.lastReason}` : '';
  return { name: 'queue', status: 'degraded', reason: `${base} (more than web.health.queueAge, ${minutes(thresholdMs)}): message ${oldest.id} is ${oldest.state}${why}` };
}

export function upstreamChecks(ups: UpstreamStatus[]): HealthCheck[] {
  if (ups.length === 0) return [{ name: 'upstreams', status: 'degraded', reason: 'no upstream is configured: accepted mail waits in the queue' }];
  return ups.map((u) => {
    const name = `upstream ${u.name}`;
    if (u.state === 'parked') return { name, status: 'degraded', reason: `parked: ${u.reason ?? 'waiting for an admin'}; mail for it waits in hold/ until it is released` };
    if (u.state === 'failing') return { name, status: 'degraded', reason: `failing: ${u.reason ?? 'the last attempts failed'}; mail is retried` };
    if (u.state === 'unknown') return { name, status: 'ok', reason: 'not used yet since start' };
    return { name, status: 'ok', reason: 'the last delivery worked' };
  });
}

export function historyCheck(h: { backend: string; ok: boolean; pending: number; missed: number; summary: string }): HealthCheck {
  if (h.backend === 'off') return { name: 'history', status: 'ok', reason: 'history is off (history.store: off)' };
  if (!h.ok) return { name: 'history', status: 'degraded', reason: h.summary };
  if (h.missed > 0) return { name: 'history', status: 'degraded', reason: `${h.missed} history event(s) were dropped while the store was down; the console misses them (mail is not affected)` };
  if (h.pending > HISTORY_BEHIND_EVENTS) return { name: 'history', status: 'degraded', reason: `the history writer is behind: ${h.pending} events waiting` };
  return { name: 'history', status: 'ok', reason: h.summary };
}

export function listenerChecks(list: ReturnType<HealthProbes['listeners']>): HealthCheck[] {
  if (list.length === 0) return [{ name: 'smtp', status: 'down', reason: 'no SMTP listener is open: no mail can be accepted' }];
  return list.map((l) => {
    const name = `smtp ${l.address}:${l.port}`;
    if (!l.listening) return { name, status: 'down', reason: `not accepting connections on ${l.address}:${l.port}` };
    if (l.connections >= l.maxConnections) return { name, status: 'down', reason: `at its connection limit (${l.connections} of limits.maxConnections ${l.maxConnections}): new clients hear "421 4.3.2 Too many connections"` };
    return { name, status: 'ok', reason: `accepting (${l.connections} connection(s) open of ${l.maxConnections})` };
  });
}

export async function spoolCheck(probe: HealthProbes['spoolWritable']): Promise<HealthCheck> {
  try {
    await probe();
    return { name: 'spool', status: 'ok', reason: 'writable' };
  } catch (err) {
    return { name: 'spool', status: 'down', reason: `the spool cannot be written (${(err as Error).message}): new mail is refused` };
  }
}

/**
 * The report as /healthz shows it without a login: addresses in reasons (an upstream's reply may
 * quote a recipient) become "<address>"; the console, behind its login, shows them.
 */
export function withoutAddresses(report: HealthReport): HealthReport {
  const mask = (t: string): string => t.replace(/[^\s<>"'@,;:()]+@[^\s<>"'@,;:()]+\.[A-Za-z0-9-]+/g, '<address>');
  return { ...report, checks: report.checks.map((c) => ({ ...c, reason: mask(c.reason) })) };
}

/** Runs every check the services allow; never rejects. */
export async function checkHealth(services: WebServices, now: number): Promise<HealthReport> {
  const threshold = services.queueAgeThresholdMs?.() ?? DEFAULT_QUEUE_AGE_MS;
  const checks: HealthCheck[] = [];
  if (services.health) {
    checks.push(...listenerChecks(services.health.listeners()));
    checks.push(await spoolCheck(() => services.health!.spoolWritable()));
  }
  try {
    checks.push(queueCheck(await services.queue.list(), now, threshold));
  } catch (err) {
    checks.push({ name: 'queue', status: 'down', reason: `the queue cannot be read: ${(err as Error).message}` });
  }
  try {
    checks.push(...upstreamChecks(await services.upstreams.status()));
  } catch (err) {
    checks.push({ name: 'upstreams', status: 'degraded', reason: `upstream states are not available: ${(err as Error).message}` });
  }
  checks.push(historyCheck(services.history.health()));
  return { status: worst(checks), at: new Date(now).toISOString(), checks };
}
