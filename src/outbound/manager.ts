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
 * never fail. Reports (null sender, or ours sent as a Microsoft 365 mailbox) are never bounced: a
 * failed one goes to badmail only, with its reason.
 * At most config.delivery.concurrency messages are in delivery at once.
 */
import type { Clock } from '../core/clock.ts';
import type { Logger } from '../core/logger.ts';
import type { Config } from '../config/schema.ts';
import { wordDuration } from '../config/units.ts';
import type { OutboundMessage, Outcome, QueueEventSink, QueueId, Transport } from '../core/types.ts';
import type { Spool } from '../queue/spool.ts';
import { pendingRecipients, retryDelay, type QueueRecord } from '../queue/record.ts';
import { Readable } from 'node:stream';
import { readdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { RouteConfig } from '../config/sections/routing.ts';
import { createRouter, DEFAULT_ROUTE } from '../routing/index.ts';
import { applySenderMode, type SenderModeSpec } from '../routing/sender-mode.ts';
import { upstreamMailbox } from '../m365/ndr-sender.ts';
import { QuotaBoard, type QuotaStatus } from './quotas.ts';
import { classifyQuota, isMicrosoftMailboxRoute } from '../m365/quota.ts';
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
  /**
   * Folder where `smarthost upstream release NAME` leaves `release.NAME` for the running relay (read
   * on every queue scan, then removed): the CLI's way to release a parked upstream or route.
   */
  controlDir?: string;
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
  /** Per sending mailbox (and Graph app, tenant): usage against the limits, and when a held one resumes. */
  quotas(): QuotaStatus[];
}

type ManagerConfig = Pick<Config, 'delivery' | 'ndr' | 'upstreams' | 'hostnameResolved'> & Partial<Pick<Config, 'routes' | 'routing'>>;

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
  const router = createRouter({ routes: config.routes ?? [], routing: config.routing ?? { rules: [] }, upstreams: config.upstreams });
  const routes = new RouteBoard(transports.map((t) => t.name), clock, probeIntervalMs, deps.events, logger);
  // budgets are per sending mailbox (and Graph app, and tenant), shared by the upstreams using it
  const quotas = new QuotaBoard(config.upstreams.filter((u) => transports.some((t) => t.name === u.name)));
  const microsoft = new Set(config.upstreams.filter(isMicrosoftMailboxRoute).map((u) => u.name));
  const saved = deps.pacingFile ? loadPacing(deps.pacingFile, logger) : {};
  quotas.restore(saved, clock.now());
  let pacingChanged = false;
  const savePacers = (): void => {
    if (!deps.pacingFile || !pacingChanged) return;
    pacingChanged = false;
    savePacing(deps.pacingFile, quotas.snapshot(clock.now()), logger);
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

  /** The transports of a recipient group: its route's upstreams in order, else the legacy choice. */
  function transportsFor(rec: QueueRecord, route?: RouteConfig): Transport[] {
    if (route) {
      const list = route.upstreams.map((n) => transports.find((t) => t.name === n)).filter((t): t is Transport => Boolean(t));
      if (list.length) return list;
      logger.warn({ id: rec.id, route: route.name }, 'the route names no configured upstream; using all upstreams');
      return transports;
    }
    const wanted = rec.envelope.upstream;
    if (wanted) {
      const t = transports.find((x) => x.name === wanted);
      if (t) return [t];
      logger.warn({ id: rec.id, upstream: wanted }, 'message names an upstream that is not configured; using all upstreams');
    }
    return transports;
  }

  function masquerade(address: string, route?: RouteConfig): string {
    const domain = route?.sender?.masqueradeDomain ?? delivery.masqueradeDomain;
    if (!domain || !address) return address;
    const at = address.lastIndexOf('@');
    return at < 0 ? `${address}@${domain}` : `${address.slice(0, at)}@${domain}`;
  }

  /**
   * The message as this transport sends it. A route with sender mode rewrite / on-behalf changes the
   * header block (and the envelope sender) here, per route, so a split message goes out right on each.
   */
  async function outboundFor(rec: QueueRecord, recipients: string[], route: RouteConfig | undefined, transport: Transport): Promise<OutboundMessage> {
    const plain = outboundMessage(rec, recipients, route);
    const mode = route?.sender?.mode ?? 'send-as';
    if (mode === 'send-as' || rec.envelope.client.source === 'ndr') return plain;
    const upstream = config.upstreams.find((u) => u.name === transport.name);
    const mailbox = upstream ? upstreamMailbox(upstream) : undefined;
    const spec: SenderModeSpec = mode === 'rewrite' ? { mode: 'rewrite', address: route!.sender!.rewriteTo! } : mailbox ? { mode: 'on-behalf', mailbox } : { mode: 'send-as' };
    if (spec.mode === 'send-as') return plain;
    const rewritten = applySenderMode(await spool.readMessage(rec.id), { mailFrom: rec.envelope.mailFrom }, spec);
    const bytes = rewritten.message;
    return {
      // the header block was rewritten here: what the intake knew of its lines no longer holds
      ...plain, mailFrom: rewritten.mailFrom, size: bytes.length, wireSafe: undefined,
      open: () => Readable.from([bytes]), read: async () => bytes, locate: () => ({ buffer: bytes }),
    };
  }

  function outboundMessage(rec: QueueRecord, recipients: string[], route?: RouteConfig): OutboundMessage {
    return {
      id: rec.id,
      // a report's sender was chosen for its route (a Microsoft 365 mailbox): never masqueraded
      mailFrom: rec.envelope.client.source === 'ndr' ? rec.envelope.mailFrom : masquerade(rec.envelope.mailFrom, route),
      recipients,
      size: rec.envelope.size,
      smtputf8: rec.envelope.smtputf8,
      eightBit: rec.envelope.eightBit,
      wireSafe: rec.envelope.wireSafe,
      open: () => spool.openMessage(rec.id),
      read: () => spool.readMessage(rec.id),
      locate: (take) => spool.locateMessage(rec.id, take),
      journal: spool.handoffJournal(rec.id),
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
  async function attempt(rec: QueueRecord, recipients: string[], route?: RouteConfig) {
    const results = new Map<string, Outcome>();
    let remaining = [...recipients];
    let attempted = false;
    let pacedUntil: number | undefined;
    let waitReason: string | undefined;
    let waitingFor: string | undefined;
    const waitTill = (until: number, reason: string): void => {
      if (pacedUntil === undefined || until < pacedUntil) {
        pacedUntil = until;
        waitReason = reason;
      }
    };
    for (const transport of transportsFor(rec, route)) {
      if (!remaining.length) break;
      // an upstream not known to work takes one delivery at a time (RouteBoard.takeTurn): a refusal
      // parks it before the next message tries, instead of one refused login per message in flight
      const endTurn = await routes.takeTurn(transport.name);
      try {
        if (!routes.available(transport.name)) {
          waitingFor ??= transport.name;
          continue;
        }
        const next: string[] = [];
        let sentHere = false;
        // the tenant's external-recipient limit: only recipients outside the tenant wait
        const external = quotas.externalHeld(transport.name, clock.now());
        if (external) {
          const out = remaining.filter((r) => quotas.isExternal(transport.name, r));
          if (out.length) {
            next.push(...out);
            remaining = remaining.filter((r) => !out.includes(r));
            waitTill(external.until, external.reason);
          }
        }
        while (remaining.length) {
          // a spent budget of this mailbox / app holds every message of it, not only the refused one
          const held = quotas.heldUntil(transport.name, clock.now());
          if (held) {
            waitTill(held.until, `waiting for mailbox quota: ${held.reason}; sending resumes at ${iso(held.until)}`);
            next.push(...remaining);
            break;
          }
          const n = quotas.reserve(transport.name, clock.now(), remaining.length);
          if (n > 0) pacingChanged = true;
          if (n === 0) {
            waitTill(quotas.pacedUntil(transport.name, clock.now()), 'waiting for the sending mailbox\'s pace (messages per minute / recipients per day)');
            next.push(...remaining);
            break;
          }
          const batch = remaining.splice(0, n);
          sentHere = true;
          const started = Date.now();
          const outcomes = await sendSafely(transport, await outboundFor(rec, batch, route, transport));
          const durationMs = Date.now() - started;
          // History and the console show what each reply means, as the record and the .BDR do.
          const explained = outcomes.map((o) => (o.reason || handedOff(o) ? o : { ...o, reason: explainOutcome(o).meaning }));
          emit({ type: 'attempt', id: rec.id, upstream: transport.name, ...(route ? { route: route.name } : {}), outcomes: explained, durationMs, at: iso() });
          logger.info({ id: rec.id, upstream: transport.name, route: route?.name, from: rec.envelope.mailFrom, recipients: batch, replies: outcomes.map((o) => `${o.recipient}: ${o.action} ${o.diagnostic ?? o.status}`), durationMs }, 'delivery attempt');
          let parkedHere = false;
          const counted: Outcome[] = [];
          for (const o of outcomes) {
            const quota = microsoft.has(transport.name) && !handedOff(o) ? classifyQuota(o, transport.kind) : undefined;
            if (quota && quota.kind !== 'park') {
              const diag = o.diagnostic ?? o.status;
              const h = quotas.hold(transport.name, quota.scope === 'tenant' ? 'tenant' : quota.scope, clock.now(), quota.holdMs, `${quota.why} (${diag})`, quota.kind === 'backoff');
              pacingChanged = true;
              const internal = quota.kind === 'tenant-external' && !quotas.isExternal(transport.name, o.recipient);
              const until = internal ? clock.now() + (delivery.scanInterval || SCAN_FALLBACK_MS) : h?.until ?? clock.now() + quota.holdMs;
              if (h && !internal) logger.warn({ upstream: transport.name, quota: quota.kind, until: iso(h.until), reply: diag }, `${quota.why}: its messages wait until ${iso(h.until)}, none is bounced`);
              results.set(o.recipient, { ...o, action: 'delayed', quota: true, reason: `${quota.why}; the message waits (until ${iso(until)}), it is not bounced` });
              waitTill(until, `waiting for Microsoft 365 quota: ${quota.why} (${diag}); sending resumes at ${iso(until)}`);
              next.push(o.recipient);
              continue;
            }
            if (quota?.kind === 'park') {
              // only an admin or Microsoft lifts it: every upstream of that mailbox / tenant stops, nothing loops
              const diag = o.diagnostic ?? o.status;
              for (const name of quotas.siblings(transport.name, quota.scope)) routes.park(name, `${quota.why}: ${diag}`);
              logger.error({ upstream: transport.name, parked: quotas.siblings(transport.name, quota.scope), reply: diag }, `${quota.why}: parked until an administrator releases it`);
              results.set(o.recipient, { ...o, action: 'delayed', routeBroken: true });
              parkedHere = true;
              waitingFor ??= transport.name;
              next.push(o.recipient);
              continue;
            }
            counted.push(o);
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
          if (counted.some(handedOff)) quotas.succeeded(transport.name);
          // Before the parked check: a probe of a parked route that got past the refusal must release
          // the route (or its probe slot), else the route stays parked with its slot taken, for good.
          // A spent quota says nothing about the route's health.
          if (!parkedHere) {
            if (counted.some(handedOff)) routes.ok(transport.name);
            else if (counted.length && counted.every((o) => o.action === 'delayed')) routes.failing(transport.name, counted[0].diagnostic ?? counted[0].status);
            else routes.endProbe(transport.name);
            if (counted.some((o) => o.action !== 'delayed')) routes.confirm(transport.name);
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
    return { results, attempted, pacedUntil, waitReason, waitingFor };
  }

  /** The route of a recipient: its own (routing), else routing.default when routes exist, else none (legacy). */
  function routeOf(rec: QueueRecord, r: QueueRecord['recipients'][number]): RouteConfig | undefined {
    if (r.route) return router.route(r.route) ?? (logger.warn({ id: rec.id, route: r.route }, 'message names a route that is no longer configured; using the default route'), router.route(config.routing?.default ?? DEFAULT_ROUTE));
    if (rec.envelope.upstream || !router.active) return undefined;
    return config.routing?.default ? router.route(config.routing.default) : undefined;
  }

  /** Each route's recipients of the message, delivered through that route; the answers merged. */
  async function attemptByRoute(rec: QueueRecord, pending: string[]) {
    const merged = { results: new Map<string, Outcome>(), attempted: false, pacedUntil: undefined as number | undefined, waitReason: undefined as string | undefined, waitingFor: undefined as string | undefined };
    const groups = new Map<RouteConfig | undefined, string[]>();
    for (const r of rec.recipients) {
      if (!pending.includes(r.address)) continue;
      const route = routeOf(rec, r);
      groups.set(route, [...(groups.get(route) ?? []), r.address]);
    }
    for (const [route, recipients] of groups) {
      const got = await attempt(rec, recipients, route);
      for (const [k, v] of got.results) merged.results.set(k, v);
      merged.attempted ||= got.attempted;
      if (got.pacedUntil !== undefined && (merged.pacedUntil === undefined || got.pacedUntil < merged.pacedUntil)) {
        merged.pacedUntil = got.pacedUntil;
        merged.waitReason = got.waitReason;
      }
      merged.waitingFor ??= got.waitingFor;
    }
    return merged;
  }

  async function failRecipients(rec: QueueRecord, failed: Outcome[], headline?: string): Promise<void> {
    if (!failed.length) return;
    const now = clock.now();
    if (rec.envelope.client.source === 'ndr') headline ??= 'smarthost could not send this delivery report; it is kept here (no report is made about a report).';
    let name: string | undefined;
    try {
      name = await spool.toBadmail(rec, failed.map((o) => o.recipient), buildBdrText(rec, failed, new Date(now), headline));
      emit({ type: 'state', id: rec.id, state: 'badmail', reason: `${failed.length} recipient(s) failed; badmail/${name}.BAD`, at: iso(now) });
      logger.warn({ id: rec.id, badmail: name, recipients: failed.map((o) => o.recipient), replies: failed.map((o) => o.diagnostic ?? o.status) }, 'delivery failed; message written to badmail');
    } catch (err) {
      logger.error({ err, id: rec.id }, 'could not write badmail');
    }
    await sendReport(config, spool, logger, rec, 'failed', failed, new Date(now), undefined, reportRouteOf(rec, failed), name);
  }

  /** The route a report about these recipients goes back through: theirs (the first one's). */
  function reportRouteOf(rec: QueueRecord, about: Outcome[]): RouteConfig | undefined {
    const r = rec.recipients.find((x) => x.address === about[0]?.recipient);
    return r ? routeOf(rec, r) : undefined;
  }

  async function deliver(rec: QueueRecord): Promise<void> {
    const now = clock.now();
    const pending = pendingRecipients(rec);
    const { results, attempted, pacedUntil, waitReason, waitingFor } = await attemptByRoute(rec, pending);
    const failedNow: Outcome[] = [];
    let retryAfter = 0;
    for (const r of rec.recipients) {
      const o = results.get(r.address);
      if (!o || r.state !== 'pending') continue;
      if (!o.routeBroken && !o.quota) r.attempts++;
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
    const triedPending = attempted && still.some((r) => results.has(r.address) && !results.get(r.address)!.routeBroken && !results.get(r.address)!.quota);
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
      rec.lastError = waitReason ?? 'waiting for the upstream\'s sending pace (messages per minute / recipients per day)';
    }
    if (triedPending && delivery.delayNotification > 0 && !rec.delayNotified && clock.now() - receivedAt >= delivery.delayNotification) {
      rec.delayNotified = true;
      const delayed = still.map((r) => r.lastOutcome).filter((o): o is Outcome => Boolean(o));
      await sendReport(config, spool, logger, rec, 'delayed', delayed, new Date(clock.now()), new Date(expiresAt), reportRouteOf(rec, delayed));
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

  /** Release requests left by the CLI (controlDir/release.NAME): NAME is an upstream or a route. */
  async function readControl(): Promise<void> {
    if (!deps.controlDir) return;
    let names: string[];
    try {
      names = await readdir(deps.controlDir);
    } catch {
      return;
    }
    for (const file of names) {
      if (!file.startsWith('release.')) continue;
      const name = file.slice('release.'.length);
      const upstreams = router.route(name) && !transports.some((t) => t.name === name) ? router.route(name)!.upstreams : [name];
      for (const u of upstreams) {
        if (routes.isParked(u)) logger.warn({ upstream: u }, `release of upstream ${u} asked from the command line`);
        await releaseUpstream(u);
      }
      await unlink(path.join(deps.controlDir, file)).catch(() => undefined);
    }
  }

  async function releaseUpstream(name: string): Promise<boolean> {
    if (!routes.release(name)) return false;
    const waiting = await spool.list({ state: 'deferred' });
    for (const e of waiting) if (e.record.waitingForUpstream === name) await spool.retry(e.record.id).catch(() => undefined);
    kick();
    return true;
  }

  async function scan(): Promise<void> {
    try {
      await readControl();
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
    releaseUpstream,
    upstreams: () => routes.list(),
    quotas: () => quotas.list(clock.now()),
  };
}
