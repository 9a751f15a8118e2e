/**
 * The delivery manager (Postfix's qmgr): claims due messages from the spool, hands them to the
 * transports in failover order, and decides each recipient's fate. Transports report; this decides.
 *
 * Per recipient: delivered (2xx) → done; failed (5xx) → badmail (.BAD + .BDR) and an NDR;
 * delayed (4xx, connection failure) → tried on the next upstream, then deferred on the retry ladder
 * (config.delivery.retry, the last value repeats) until config.delivery.expiration, when it fails as
 * expired (4.4.7). One delay notice after config.delivery.delayNotification. A connection lost after
 * the final dot marks the message possibleDuplicate and it is retried (at least once, never zero).
 * routeBroken (credentials refused, SMTP AUTH off…) parks that upstream: nothing is bounced, the
 * messages wait (deferred, waitingForUpstream) until releaseUpstream() or the probe time.
 * Pacing (maxRecipientsPerMessage, maxMessagesPerMinute, maxRecipientsPerDay) makes messages wait,
 * never fail. Null-sender messages (reports) are never bounced: a failed one goes to badmail only.
 * At most config.delivery.concurrency messages are in delivery at once.
 */
import type { Clock } from '../core/clock.ts';
import type { Logger } from '../core/logger.ts';
import type { Config } from '../config/schema.ts';
import { wordDuration } from '../config/units.ts';
import type { OutboundMessage, Outcome, QueueEventSink, QueueId, Transport } from '../core/types.ts';
import type { Spool } from '../queue/spool.ts';
import { pendingRecipients, retryDelay, type QueueRecord } from '../queue/record.ts';
import { UpstreamPacer } from './pacing.ts';
import { loadPacing, savePacing, SAVE_INTERVAL_MS } from './pacing-store.ts';
import { RouteBoard, type UpstreamStatus } from './routes.ts';
import { explainOutcome } from './explain.ts';
import { buildBdrText } from './bdr.ts';
import { sendReport } from './reports.ts';

export interface DeliveryDeps {
  spool: Spool;
  /** In failover order. The manager closes them on stop(). */
  transports: Transport[];
  logger: Logger;
  clock: Clock;
  events?: QueueEventSink;
  /** Where the upstreams' daily recipient counts are kept across restarts and reloads (pacing-store.ts). */
  pacingFile?: string;
}

export interface DeliveryManager {
  start(): void;
  stop(): Promise<void>;
  /** Look for due messages now (called on every enqueue). */
  kick(): void;
  /** Delivers everything due now and resolves when those deliveries are settled (tests, CLI). */
  runOnce(): Promise<void>;
  /** The admin fixed a parked upstream: use it again and retry the messages waiting for it. */
  releaseUpstream(name: string): Promise<boolean>;
  upstreams(): UpstreamStatus[];
}

type ManagerConfig = Pick<Config, 'delivery' | 'ndr' | 'upstreams' | 'hostnameResolved'>;

const SCAN_FALLBACK_MS = 5_000;

/**
 * The upstream took the message: 'delivered' (an SMTP 250), or 'relayed' (Graph's 202, a connector:
 * accepted by Microsoft, which delivers onward). Either way our part is done; never send it again.
 */
const handedOff = (o: Outcome): boolean => o.action === 'delivered' || o.action === 'relayed';

export function createDeliveryManager(config: ManagerConfig, deps: DeliveryDeps): DeliveryManager {
  const { spool, transports, logger, clock } = deps;
  const delivery = config.delivery;
  const probeIntervalMs = delivery.upstreamProbeInterval ?? 15 * 60_000;
  const routes = new RouteBoard(transports.map((t) => t.name), clock, probeIntervalMs, deps.events);
  const pacers = new Map(transports.map((t) => [t.name, new UpstreamPacer(config.upstreams.find((u) => u.name === t.name) ?? {})]));
  const saved = deps.pacingFile ? loadPacing(deps.pacingFile, logger) : {};
  for (const [name, pacer] of pacers) pacer.restore(saved[name], clock.now());
  let pacingChanged = false;
  const savePacers = (): void => {
    if (!deps.pacingFile || !pacingChanged) return;
    pacingChanged = false;
    savePacing(deps.pacingFile, Object.fromEntries([...pacers].map(([name, p]) => [name, p.snapshot(clock.now())])), logger);
  };
  let saveTimer: NodeJS.Timeout | undefined;
  const inFlight = new Map<QueueId, Promise<void>>();
  let timer: NodeJS.Timeout | undefined;
  let running = false;
  let pumpScheduled = false;
  let stopped = false;

  const iso = (t = clock.now()) => new Date(t).toISOString();
  const emit: QueueEventSink = (e) => {
    try {
      deps.events?.(e);
    } catch (err) {
      logger.warn({ err }, 'queue event sink failed');
    }
  };

  function transportsFor(rec: QueueRecord): Transport[] {
    const wanted = rec.envelope.upstream;
    if (wanted) {
      const t = transports.find((x) => x.name === wanted);
      if (t) return [t];
      logger.warn({ id: rec.id, upstream: wanted }, 'message names an upstream that is not configured; using all upstreams');
    }
    return transports;
  }

  function masquerade(address: string): string {
    const domain = delivery.masqueradeDomain;
    if (!domain || !address) return address;
    const at = address.lastIndexOf('@');
    return at < 0 ? `${address}@${domain}` : `${address.slice(0, at)}@${domain}`;
  }

  function outboundMessage(rec: QueueRecord, recipients: string[]): OutboundMessage {
    return {
      id: rec.id,
      mailFrom: masquerade(rec.envelope.mailFrom),
      recipients,
      size: rec.envelope.size,
      smtputf8: rec.envelope.smtputf8,
      eightBit: rec.envelope.eightBit,
      open: () => spool.openMessage(rec.id),
      read: () => spool.readMessage(rec.id),
      locate: () => spool.locateMessage(rec.id),
    };
  }

  /**
   * Transports never throw for SMTP failures; a bug or an unexpected error still must not leave a
   * message outside the retry ladder: it becomes a temporary failure like any other. Every recipient
   * of the batch gets an outcome.
   */
  async function sendSafely(transport: Transport, message: OutboundMessage): Promise<Outcome[]> {
    let outcomes: Outcome[];
    try {
      outcomes = await transport.send(message);
    } catch (err) {
      logger.error({ err, id: message.id, upstream: transport.name }, 'transport failed unexpectedly');
      outcomes = [];
    }
    const given = new Set(outcomes.map((o) => o.recipient));
    for (const r of message.recipients) {
      if (!given.has(r)) outcomes.push({ recipient: r, action: 'delayed', status: '4.3.0', transport: transport.kind, at: iso(), diagnostic: `${transport.name} gave no result for this recipient (internal error); it will be tried again` });
    }
    // the .BDR, history and the console name the upstream as the admin configured it
    return outcomes.filter((o) => message.recipients.includes(o.recipient)).map((o) => (o.upstream ? o : { ...o, upstream: transport.name }));
  }

  /** Sends `recipients` through the upstreams in order; returns the last outcome per recipient and what happened. */
  async function attempt(rec: QueueRecord, recipients: string[]) {
    const results = new Map<string, Outcome>();
    let remaining = [...recipients];
    let attempted = false;
    let pacedUntil: number | undefined;
    let waitingFor: string | undefined;
    for (const transport of transportsFor(rec)) {
      if (!remaining.length) break;
      // an upstream not known to work takes one delivery at a time (RouteBoard.takeTurn): a refusal
      // parks it before the next message tries, instead of one refused login per message in flight
      const endTurn = await routes.takeTurn(transport.name);
      try {
        if (!routes.available(transport.name)) {
          waitingFor ??= transport.name;
          continue;
        }
        const pacer = pacers.get(transport.name)!;
        const next: string[] = [];
        let sentHere = false;
        while (remaining.length) {
          const n = pacer.reserve(clock.now(), remaining.length);
          if (n > 0) pacingChanged = true;
          if (n === 0) {
            const until = pacer.waitUntil(clock.now());
            pacedUntil = pacedUntil === undefined ? until : Math.min(pacedUntil, until);
            next.push(...remaining);
            break;
          }
          const batch = remaining.splice(0, n);
          sentHere = true;
          const started = Date.now();
          const outcomes = await sendSafely(transport, outboundMessage(rec, batch));
          const durationMs = Date.now() - started;
          // History and the console show what each reply means, as the record and the .BDR do.
          const explained = outcomes.map((o) => (o.reason || handedOff(o) ? o : { ...o, reason: explainOutcome(o).meaning }));
          emit({ type: 'attempt', id: rec.id, upstream: transport.name, outcomes: explained, durationMs, at: iso() });
          logger.info({ id: rec.id, upstream: transport.name, from: rec.envelope.mailFrom, recipients: batch, replies: outcomes.map((o) => `${o.recipient}: ${o.action} ${o.diagnostic ?? o.status}`), durationMs }, 'delivery attempt');
          let parkedHere = false;
          for (const o of outcomes) {
            const broken = o.action === 'delayed' && (o.routeBroken || explainOutcome(o).routeBroken);
            results.set(o.recipient, broken ? { ...o, routeBroken: true } : o);
            if (broken) {
              parkedHere = true;
              routes.park(transport.name, o.diagnostic ?? o.reason ?? 'route refused');
              waitingFor ??= transport.name;
              next.push(o.recipient);
              continue;
            }
            attempted = true;
            if (o.possibleDuplicate) rec.possibleDuplicate = true;
            // a possible duplicate is not rushed to the next upstream: it waits for its retry
            if (o.action === 'delayed' && !o.possibleDuplicate) next.push(o.recipient);
          }
          // Before the parked check: a probe of a parked route that got past the refusal must release
          // the route (or its probe slot), else the route stays parked with its slot taken, for good.
          if (!parkedHere) {
            if (outcomes.some(handedOff)) routes.ok(transport.name);
            else if (outcomes.length && outcomes.every((o) => o.action === 'delayed')) routes.failing(transport.name, outcomes[0].diagnostic ?? outcomes[0].status);
            else routes.endProbe(transport.name);
            if (outcomes.some((o) => o.action !== 'delayed')) routes.confirm(transport.name);
          }
          if (routes.isParked(transport.name)) {
            next.push(...remaining);
            remaining = [];
            break;
          }
        }
        if (!sentHere) routes.endProbe(transport.name);
        remaining = next;
      } finally {
        endTurn();
      }
    }
    return { results, attempted, pacedUntil, waitingFor };
  }

  async function failRecipients(rec: QueueRecord, failed: Outcome[], headline?: string): Promise<void> {
    if (!failed.length) return;
    const now = clock.now();
    let name: string | undefined;
    try {
      name = await spool.toBadmail(rec, failed.map((o) => o.recipient), buildBdrText(rec, failed, new Date(now), headline));
      emit({ type: 'state', id: rec.id, state: 'badmail', reason: `${failed.length} recipient(s) failed; badmail/${name}.BAD`, at: iso(now) });
      logger.warn({ id: rec.id, badmail: name, recipients: failed.map((o) => o.recipient), replies: failed.map((o) => o.diagnostic ?? o.status) }, 'delivery failed; message written to badmail');
    } catch (err) {
      logger.error({ err, id: rec.id }, 'could not write badmail');
    }
    await sendReport(config, spool, logger, rec, 'failed', failed, new Date(now), undefined, name);
  }

  async function deliver(rec: QueueRecord): Promise<void> {
    const now = clock.now();
    const pending = pendingRecipients(rec);
    const { results, attempted, pacedUntil, waitingFor } = pending.length ? await attempt(rec, pending) : { results: new Map<string, Outcome>(), attempted: false, pacedUntil: undefined, waitingFor: undefined };
    const failedNow: Outcome[] = [];
    let retryAfter = 0;
    for (const r of rec.recipients) {
      const o = results.get(r.address);
      if (!o || r.state !== 'pending') continue;
      if (!o.routeBroken) r.attempts++;
      r.lastOutcome = o.reason || handedOff(o) ? o : { ...o, reason: explainOutcome(o).meaning };
      if (handedOff(o)) r.state = 'delivered';
      else if (o.action === 'failed') {
        r.state = 'failed';
        failedNow.push(r.lastOutcome);
      }
      if (o.retryAfterMs) retryAfter = Math.max(retryAfter, o.retryAfterMs);
    }
    if (attempted) {
      rec.firstAttemptAt ??= now;
      rec.lastAttemptAt = now;
    }
    await failRecipients(rec, failedNow);

    let still = rec.recipients.filter((r) => r.state === 'pending');
    // did an upstream actually answer for a recipient still pending? (not paced, not a parked route)
    const triedPending = attempted && still.some((r) => results.has(r.address) && !results.get(r.address)!.routeBroken);
    const receivedAt = Date.parse(rec.envelope.receivedAt) || now;
    const expiresAt = receivedAt + delivery.expiration;
    if (still.length && triedPending && clock.now() >= expiresAt) {
      const expired: Outcome[] = still.map((r) => ({
        recipient: r.address, action: 'failed', status: '4.4.7', transport: r.lastOutcome?.transport ?? 'spool', remoteMta: r.lastOutcome?.remoteMta,
        diagnostic: r.lastOutcome?.diagnostic, at: iso(), upstream: r.lastOutcome?.upstream, reason: `expired after ${wordDuration(delivery.expiration)} in the queue; last reply: ${r.lastOutcome?.diagnostic ?? 'none'}`,
      }));
      for (const r of still) {
        r.state = 'failed';
        r.lastOutcome = expired.find((o) => o.recipient === r.address);
      }
      await failRecipients(rec, expired, `smarthost gave up on this message: it could not be delivered within ${wordDuration(delivery.expiration)}.`);
      still = [];
    }

    if (!still.length) {
      await spool.settle(rec, 'done');
      const anyFailed = rec.recipients.some((r) => r.state === 'failed');
      emit({ type: 'state', id: rec.id, state: anyFailed ? 'failed' : 'delivered', at: iso() });
      return;
    }

    const last = still[0].lastOutcome;
    if (triedPending) {
      rec.attempts++;
      rec.waitingForUpstream = undefined;
      const wait = Math.max(retryDelay(delivery.retry, rec.attempts), retryAfter);
      rec.nextAttemptAt = Math.min(clock.now() + wait, Math.max(expiresAt, clock.now() + 1000));
      rec.lastError = last?.diagnostic ?? last?.reason;
    } else if (waitingFor) {
      rec.waitingForUpstream = waitingFor;
      // while another message holds the probe, its probe time is already past: wait a scan, don't spin
      rec.nextAttemptAt = Math.max(routes.nextProbe([waitingFor]) ?? clock.now() + probeIntervalMs, clock.now() + (delivery.scanInterval || SCAN_FALLBACK_MS));
      // a message that arrived after the route was parked has no reply of its own: give the route's
      const parkedFor = routes.list().find((u) => u.name === waitingFor)?.reason;
      rec.lastError = `waiting for upstream ${waitingFor}, which is parked: ${last?.diagnostic ?? parkedFor ?? 'route refused'}`;
    } else {
      rec.nextAttemptAt = pacedUntil ?? clock.now() + (delivery.scanInterval || SCAN_FALLBACK_MS);
      rec.lastError = 'waiting for the upstream\'s sending pace (messages per minute / recipients per day)';
    }
    if (triedPending && delivery.delayNotification > 0 && !rec.delayNotified && clock.now() - receivedAt >= delivery.delayNotification) {
      rec.delayNotified = true;
      const delayed = still.map((r) => r.lastOutcome).filter((o): o is Outcome => Boolean(o));
      await sendReport(config, spool, logger, rec, 'delayed', delayed, new Date(clock.now()), new Date(expiresAt));
    }
    await spool.settle(rec, 'deferred');
    emit({ type: 'state', id: rec.id, state: 'deferred', reason: rec.lastError, at: iso() });
  }

  async function handle(id: QueueId): Promise<void> {
    let rec: QueueRecord | undefined;
    try {
      rec = await spool.claim(id);
      if (!rec) return;
      emit({ type: 'state', id, state: 'active', at: iso() });
      await deliver(rec);
    } catch (err) {
      logger.error({ err, id }, 'delivery failed unexpectedly; the message stays queued');
      if (rec) {
        rec.nextAttemptAt = clock.now() + retryDelay(delivery.retry, 1);
        rec.lastError = `internal error: ${(err as Error).message}`;
        await spool.settle(rec, 'deferred').catch((e) => logger.error({ err: e, id }, 'could not put the message back'));
      }
    }
  }

  function pump(): void {
    pumpScheduled = false;
    // with no upstream configured, mail simply waits in incoming/ (no churn of claims and rewrites)
    if (stopped || transports.length === 0) return;
    const free = delivery.concurrency - inFlight.size;
    if (free <= 0) return;
    for (const rec of spool.due(clock.now(), free + inFlight.size)) {
      if (inFlight.size >= delivery.concurrency) break;
      if (inFlight.has(rec.id)) continue;
      const p = handle(rec.id).finally(() => {
        inFlight.delete(rec.id);
        if (running) kick();
      });
      inFlight.set(rec.id, p);
    }
  }

  function kick(): void {
    if (pumpScheduled) return;
    pumpScheduled = true;
    setImmediate(pump);
  }

  spool.onEnqueued(() => {
    if (running) kick();
  });

  async function runOnce(): Promise<void> {
    for (let round = 0; round < 10_000; round++) {
      pump();
      if (!inFlight.size) return;
      await Promise.all([...inFlight.values()]);
    }
  }

  async function scan(): Promise<void> {
    try {
      await spool.rescan();
      kick();
    } catch (err) {
      logger.error({ err }, 'queue scan failed');
    }
  }

  return {
    start() {
      if (running) return;
      running = true;
      timer = setInterval(scan, delivery.scanInterval || SCAN_FALLBACK_MS);
      timer.unref?.();
      if (deps.pacingFile) saveTimer = setInterval(savePacers, SAVE_INTERVAL_MS).unref();
      kick();
    },
    async stop() {
      running = false;
      stopped = true;
      if (timer) clearInterval(timer);
      if (saveTimer) clearInterval(saveTimer);
      await Promise.allSettled([...inFlight.values()]);
      savePacers();
      await Promise.allSettled(transports.map((t) => t.close()));
    },
    kick,
    runOnce,
    async releaseUpstream(name: string) {
      if (!routes.release(name)) return false;
      const waiting = await spool.list({ state: 'deferred' });
      for (const e of waiting) if (e.record.waitingForUpstream === name) await spool.retry(e.record.id).catch(() => undefined);
      kick();
      return true;
    },
    upstreams: () => routes.list(),
  };
}
