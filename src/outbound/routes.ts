/**
 * Upstream health as the delivery manager sees it: ok, failing (connection/4xx trouble) or parked
 * (the route is broken: credentials refused, SMTP AUTH disabled…). A parked upstream gets no mail
 * until an admin releases it (releaseUpstream) or its probe time comes: then ONE delivery tries it,
 * and a second refusal parks it again. Changes are reported as 'upstream' events. In memory only.
 *
 * An upstream not tried yet (since start, or since it was parked) gets one delivery at a time (takeTurn): with a wrong password and ten messages waiting,
 * Microsoft 365 sees one refused login, not ten at once (its smart lockout counts them), and a
 * refusal parks the route before a second message is tried. Once it answers, deliveries run in parallel.
 */
import type { Clock } from '../core/clock.ts';
import type { Logger } from '../core/logger.ts';
import type { QueueEventSink } from '../core/types.ts';

export interface UpstreamStatus {
  name: string;
  state: 'ok' | 'failing' | 'parked';
  reason?: string;
  since: number;
  /** For parked upstreams: when the next probe may happen. */
  probeAt?: number;
}

export class RouteBoard {
  private status = new Map<string, UpstreamStatus>();
  private probing = new Set<string>();
  /** Upstreams past their first delivery since start or since they were parked: no longer one at a time. */
  private confirmed = new Set<string>();
  /** The one delivery in progress on an upstream not confirmed yet; the next waits for it. */
  private turns = new Map<string, Promise<void>>();
  private clock: Clock;
  private events?: QueueEventSink;
  private probeIntervalMs: number;
  private logger?: Logger;

  constructor(names: string[], clock: Clock, probeIntervalMs: number, events?: QueueEventSink, logger?: Logger) {
    this.logger = logger;
    this.clock = clock;
    this.events = events;
    this.probeIntervalMs = probeIntervalMs;
    for (const name of names) this.status.set(name, { name, state: 'ok', since: clock.now() });
  }

  private set(name: string, state: UpstreamStatus['state'], reason?: string): void {
    const cur = this.status.get(name);
    const now = this.clock.now();
    const probeAt = state === 'parked' ? now + this.probeIntervalMs : undefined;
    if (cur && cur.state === state && state !== 'parked') return;
    this.status.set(name, { name, state, reason, since: cur?.state === state ? cur.since : now, probeAt });
    // an admin must hear of a parked route and of its release, with the reason
    if (state === 'parked' && cur?.state !== 'parked') this.logger?.warn({ upstream: name, reason, probeAt: new Date(probeAt!).toISOString() }, `upstream ${name} parked: ${reason ?? 'route refused'}`);
    if (state === 'ok' && cur?.state === 'parked') this.logger?.warn({ upstream: name, reason: reason ?? 'a delivery got through' }, `upstream ${name} released: ${reason ?? 'a delivery got through'}`);
    try {
      this.events?.({ type: 'upstream', upstream: name, state, reason, at: new Date(now).toISOString() });
    } catch { /* sinks must not break delivery */ }
  }

  /** May a delivery use this upstream now? A parked one past its probe time lets one delivery through. */
  available(name: string): boolean {
    const s = this.status.get(name);
    if (!s || s.state !== 'parked') return true;
    if (s.probeAt !== undefined && this.clock.now() >= s.probeAt && !this.probing.has(name)) {
      this.probing.add(name);
      return true;
    }
    return false;
  }

  /** A probe slot was granted but not used (e.g. pacing): let the next delivery probe. */
  endProbe(name: string): void {
    this.probing.delete(name);
  }

  /**
   * Waits until this delivery may use the upstream: at once when it is confirmed, else after the
   * delivery before it. Resolves with the function to call when done (always call it).
   */
  async takeTurn(name: string): Promise<() => void> {
    for (let t = this.turns.get(name); t; t = this.turns.get(name)) await t;
    // no await between the check above and this: the next caller sees our turn
    if (this.confirmed.has(name)) return () => {};
    let done!: () => void;
    this.turns.set(name, new Promise<void>((resolve) => { done = resolve; }));
    return () => {
      this.turns.delete(name);
      done();
    };
  }

  /** The upstream answered a delivery (delivered, or refused a recipient or the message): parallel deliveries from now on. */
  confirm(name: string): void {
    this.confirmed.add(name);
  }

  park(name: string, reason: string): void {
    this.confirmed.delete(name);
    this.probing.delete(name);
    this.set(name, 'parked', reason);
  }

  failing(name: string, reason: string): void {
    // connection trouble says nothing about our credentials: no reason to hold deliveries back one
    // by one (each would wait a connection timeout, and its failover with it)
    this.confirmed.add(name);
    const wasProbe = this.probing.delete(name);
    // a parked route stays parked unless this was its probe (which got past the refusal)
    if (this.status.get(name)?.state === 'parked' && !wasProbe) return;
    this.set(name, 'failing', reason);
  }

  ok(name: string): void {
    this.confirmed.add(name);
    this.probing.delete(name);
    this.set(name, 'ok');
  }

  /** The admin fixed the route. Returns false for an unknown name. */
  release(name: string): boolean {
    if (!this.status.has(name)) return false;
    this.probing.delete(name);
    this.set(name, 'ok', 'released by an administrator');
    return true;
  }

  isParked(name: string): boolean {
    return this.status.get(name)?.state === 'parked';
  }

  /** Earliest probe time among the given parked upstreams. */
  nextProbe(names: string[]): number | undefined {
    const times = names.map((n) => this.status.get(n)?.probeAt).filter((t): t is number => t !== undefined);
    return times.length ? Math.min(...times) : undefined;
  }

  list(): UpstreamStatus[] {
    return [...this.status.values()].map((s) => ({ ...s }));
  }
}
