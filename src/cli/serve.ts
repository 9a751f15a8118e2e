/**
 * `smarthost serve`: composes the relay and runs it until SIGTERM/SIGINT. This is the one place
 * that knows every stage; read it top to bottom to follow a message:
 *
 *   inbound listener / pickup folder ──enqueue──▶ spool (fsync, then 250)
 *   delivery manager ──claim──▶ transport (smtp / graph / connector) ──outcome──▶ settle, NDR, badmail
 *   every step ──QueueEvent──▶ event bus ──▶ history, metrics, console live view
 *
 * SIGHUP (or the console) reloads the config file: listeners get the new policies and limits for
 * new commands and connections, nothing is dropped, queued mail stays where it is. Sections read
 * only at start (RESTART_ONLY) are reported, not applied.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { systemClock, type Clock } from '../core/clock.ts';
import { createLogger, type Logger } from '../core/logger.ts';
import type { EnqueueOptions, Envelope, QueueEvent, QueueId } from '../core/types.ts';
import { loadConfig } from '../config/load.ts';
import { configDirOf, configFileOf, type Config } from '../config/schema.ts';
import { openSpool } from '../queue/index.ts';
import { createDeliveryManager } from '../outbound/index.ts';
import { openHistory } from '../history/index.ts';
import { createSmtpListener } from '../inbound/listener.ts';
import { legacyWarning } from '../inbound/tls-profile.ts';
import { createSenderCheck, senderRouteFor, applySenderMode } from '../inbound/sender-policy.ts';
import { createPickupWatcher } from '../pickup/watcher.ts';
import { createRouter, type Router } from '../routing/index.ts';
import { basicAuthWarning } from '../m365/basic-auth.ts';
import { buildTransports, withEffectiveLimits } from './compose/transports.ts';
import { createEventBus } from './compose/events.ts';
import { createRefusalLog } from './compose/refusals.ts';
import { assertStartable } from './compose/preflight.ts';

export interface RunningRelay {
  config(): Config;
  smtp: Array<{ address: string; port: number; tls: string }>;
  webUrl?: string;
  /** Applies the config file; lists the changed sections that only a restart applies. */
  reload(): Promise<ReloadResult>;
  stop(): Promise<void>;
}

export interface ReloadResult {
  /** Changed config sections read only at start (listen addresses, mailroot, …): not applied yet. */
  restartNeeded: string[];
}

/** Config sections read only at start: a reload leaves them as they were. */
const RESTART_ONLY = ['listen', 'mailroot', 'pickup', 'log', 'web', 'history', 'queue'] as const;

/** Sections of `next` that differ from what the relay started with and that only a restart applies. */
export function restartOnlyChanges(started: Config, next: Config): string[] {
  return RESTART_ONLY.filter((key) => JSON.stringify(started[key]) !== JSON.stringify(next[key]));
}

/** Days until the listener's certificate expires (configured or self-signed), for the console and /metrics. */
function certificateDaysLeft(config: Config, clock: Clock): number | undefined {
  const file = config.tls.cert ? path.resolve(configDirOf(config), config.tls.cert) : path.join(config.mailrootPath, 'tls', 'selfsigned.crt');
  if (!existsSync(file)) return undefined;
  try {
    const notAfter = Date.parse(new X509Certificate(readFileSync(file)).validTo);
    return Math.floor((notAfter - clock.now()) / 86_400_000);
  } catch {
    return undefined;
  }
}

export async function startRelay(initial: Config, opts: { logger?: Logger; clock?: Clock } = {}): Promise<RunningRelay> {
  let config = initial;
  const clock = opts.clock ?? systemClock;
  const logger = opts.logger ?? createLogger({ level: config.log.level, format: (process.env.SMARTHOST_LOG_FORMAT as 'json' | undefined) ?? config.log.format });
  const bus = createEventBus(logger);

  // History is a view of the spool, fed by events in batches off the SMTP path.
  const history = openHistory(config, { logger: logger.child({ stage: 'history' }), clock });
  bus.subscribe((e) => history.record(e));

  const spool = await openSpool(config, { clock, logger: logger.child({ stage: 'queue' }), events: (e: QueueEvent) => bus.emit(e) });
  // A relay killed mid-batch lost its last history events: catch up from the spool, the truth (never delays the start).
  void spool.list().then((entries) => history.reconcile(entries.map((e) => ({ id: e.record.id, envelope: e.record.envelope }))))
    .catch((err: Error) => logger.warn({ err: err.message }, 'history could not catch up with the spool; it may miss messages accepted just before the restart'));
  // The delivery side (transports + manager) is rebuilt on reload when upstreams or delivery
  // settings change; the spool, and so every queued message, stays as it is.
  const startDelivery = async (cfg: Config) => {
    const built = await buildTransports(cfg, { logger: logger.child({ stage: 'transport' }), clock });
    for (const u of cfg.upstreams) {
      const warning = basicAuthWarning(u, clock.now());
      if (warning) logger.warn({ upstream: u.name }, warning);
    }
    if (cfg.upstreams.length === 0) logger.warn('no upstream is configured: accepted mail waits in the queue until one is added (upstreams: in the config file)');
    const manager = createDeliveryManager(withEffectiveLimits(cfg), {
      spool, transports: built.transports, logger: logger.child({ stage: 'outbound' }), clock, events: (e: QueueEvent) => bus.emit(e),
      // Microsoft's daily recipient budget outlives a restart or reload; so must our count of it
      pacingFile: path.join(cfg.mailrootPath, 'pacing.json'),
      controlDir: path.join(cfg.mailrootPath, 'control'),
    });
    return { manager, transports: built.transports, tokens: built.tokens };
  };
  let { manager: delivery, transports, tokens } = await startDelivery(config);
  // The listener asks through this wrapper, so a reload's new sender rules apply to the next command.
  // Always built: with no senders: rules it still asks whether each route's mailbox may send as the sender.
  let senderCheck = createSenderCheck(config);

  // Routing (src/routing): each recipient's route is chosen on the way into the spool and kept in
  // the queue record; a message whose recipients need different routes is delivered per route.
  let router: Router = createRouter(config);
  const routed = (envelope: Envelope): Envelope => {
    if (!router.active || envelope.client.source === 'ndr' || envelope.recipientRoutes) return envelope;
    const choices = router.choose({ mailFrom: envelope.mailFrom, headerFrom: envelope.headerFrom, recipients: envelope.recipients, clientAddress: envelope.client.address, user: envelope.client.user });
    const recipientRoutes: Record<string, string> = {};
    for (const c of choices) for (const r of c.recipients) recipientRoutes[r] = c.route;
    return { ...envelope, route: choices.map((c) => c.route).join(','), recipientRoutes };
  };
  const routedSpool = { enqueue: (envelope: Envelope, content: Buffer | NodeJS.ReadableStream, id?: string) => spool.enqueue(routed(envelope), content, id) };

  // Sender rules: checked before 250 by the listener; their mode (rewrite / on-behalf) and upstream
  // choice are applied here, on the way into the spool, so the stored message is what goes out.
  const enqueue = {
    // `id` is the one the listener wrote into the Received: header: the message is stored under it,
    // so the client's "250 … queued as ID" and the header name the same message
    async enqueue(original: Envelope, content: Buffer | NodeJS.ReadableStream, id?: QueueId, options?: EnqueueOptions) {
      const envelope = routed(original);
      if (config.senders.length === 0 || envelope.client.source !== 'smtp') return spool.enqueue(envelope, content, id, options);
      const route = senderRouteFor(config, { clientAddress: envelope.client.address, user: envelope.client.user });
      const withRoute: Envelope = route.upstream ? { ...envelope, upstream: route.upstream.name } : envelope;
      if (route.spec.mode === 'send-as') return spool.enqueue(withRoute, content, id, options);
      const raw = Buffer.isBuffer(content) ? content : await collect(content);
      const rewritten = applySenderMode(raw, withRoute, route.spec);
      return spool.enqueue({ ...withRoute, mailFrom: rewritten.mailFrom, size: rewritten.message.length }, rewritten.message, id, options);
    },
    // cleared just before the listener's 250 (src/queue/acknowledge.ts)
    acknowledge: (id: QueueId) => spool.acknowledge(id),
  };
  // What the listener refused, for /metrics and the console's Refusals page.
  const refusals = createRefusalLog();
  const listener = createSmtpListener(config, {
    enqueue,
    logger: logger.child({ stage: 'inbound' }),
    clock,
    senderCheck: (ctx) => senderCheck(ctx),
    onRefusal: (r) => refusals.record(r),
  });
  const pickup = createPickupWatcher(config, { enqueue: routedSpool, quarantine: spool, logger: logger.child({ stage: 'pickup' }), clock });

  const smtp = await listener.start();
  if (config.pickup.enabled) await pickup.start();
  delivery.start();

  // SIGHUP / console: a config that fails validation changes nothing. The sections in RESTART_ONLY
  // need a restart (the admin is told which); everything else (TLS certificate included) applies now.
  const started = config;
  const reload = async (): Promise<ReloadResult> => {
    const next = loadConfig(configFileOf(config));
    await listener.reload(next);
    senderCheck = createSenderCheck(next);
    router = createRouter(next);
    const outboundChanged = JSON.stringify([config.upstreams, config.delivery, config.ndr, config.hostnameResolved, config.routes, config.routing]) !== JSON.stringify([next.upstreams, next.delivery, next.ndr, next.hostnameResolved, next.routes, next.routing]);
    config = next;
    if (outboundChanged) {
      await delivery.stop();
      ({ manager: delivery, transports, tokens } = await startDelivery(next));
      delivery.start();
    }
    const restartNeeded = restartOnlyChanges(started, next);
    logger.info({ config: next.source, outboundRestarted: outboundChanged }, 'configuration reloaded');
    if (restartNeeded.length) logger.warn({ config: next.source, restartNeeded }, `changes to ${restartNeeded.join(', ')} apply only when smarthost is restarted`);
    return { restartNeeded };
  };

  let webUrl: string | undefined;
  let stopWeb: (() => Promise<void>) | undefined;
  if (config.web.enabled) {
    // Loaded only when the console is on: Fastify and its plugins cost memory a headless relay does not need.
    const [{ startWeb }, { buildWebServices }, { buildDiagnostics }] = await Promise.all([
      import('../web/app.ts'), import('./compose/web-services.ts'), import('./compose/diagnostics.ts'),
    ]);
    const services = buildWebServices({
      getConfig: () => config,
      spool,
      history,
      bus,
      upstreams: { status: () => delivery.upstreams(), release: (name) => delivery.releaseUpstream(name), quotas: () => delivery.quotas() },
      tokens: () => tokens,
      logger: logger.child({ stage: 'web' }),
      reload,
      tlsCertificateDaysLeft: () => certificateDaysLeft(config, clock),
      diagnostics: buildDiagnostics(),
      refusals,
      listeners: () => listener.states().map((l) => ({ ...l, connections: listener.stats().connections, maxConnections: config.limits.maxConnections })),
      devices: {
        status: () => ({
          oldTls: smtp.filter((b, i) => b.tls !== 'none' && started.listen[i]?.tlsProfile === 'legacy').map((b) => ({ listener: `${b.address}:${b.port}`, note: legacyWarning(`${b.address}:${b.port}`) })),
          starttlsWithheld: listener.tlsFailures?.() ?? [],
        }),
      },
    });
    const web = await startWeb(services, config, { logger: logger.child({ stage: 'web' }), clock });
    webUrl = web.url;
    stopWeb = () => web.app.close();
  }
  logger.info({ smtp: smtp.map((a) => `${a.address}:${a.port}/${a.tls}`), web: webUrl, mailroot: config.mailrootPath, upstreams: config.upstreams.map((u) => u.name) }, 'smarthost is running');

  return {
    config: () => config,
    smtp,
    webUrl,
    reload,
    async stop() {
      await listener.stop({ graceful: true });
      await pickup.stop();
      await delivery.stop();
      await stopWeb?.();
      await Promise.all(transports.map((t) => t.close().catch(() => {})));
      await history.close();
      await spool.close();
    },
  };
}

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  return Buffer.concat(chunks);
}

/** Runs until a signal: SIGTERM/SIGINT stop gracefully, SIGHUP reloads. */
export async function serve(configFile: string | undefined, opts: { triedConfigs?: string[] } = {}): Promise<void> {
  const config = loadConfig(configFile);
  // the same validation as `config check`, before anything is created (compose/preflight.ts)
  await assertStartable(config);
  const logger = createLogger({ level: config.log.level, format: (process.env.SMARTHOST_LOG_FORMAT as 'json' | undefined) ?? config.log.format });
  if (opts.triedConfigs) logger.warn({ tried: opts.triedConfigs, mailroot: config.mailrootPath }, 'no config file found: running on the embedded defaults, spool in the current folder');
  // The signal handlers are set before the relay starts and never removed: a signal while starting
  // (the SMTP port may already answer) would otherwise end the process by its default action, and a
  // listener removed while its signal is on the way loses that signal. One that arrives while
  // starting is acted on once the relay runs: SIGTERM/SIGINT stop it gracefully, SIGHUP reloads.
  let relay: RunningRelay | undefined;
  let stopAsked: string | undefined;
  let reloadAsked = false;
  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (!relay) {
      stopAsked ??= signal;
      return;
    }
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping: finishing open SMTP sessions and deliveries');
    const force = setTimeout(() => process.exit(1), 30_000);
    force.unref();
    await relay.stop().catch((err) => logger.error({ err }, 'error while stopping'));
    process.exit(0);
  };
  const reload = (): void => {
    if (!relay) {
      reloadAsked = true;
      return;
    }
    relay.reload().catch((err) => logger.error({ err: String(err) }, 'reload refused: the running configuration stays in force'));
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGHUP', reload);
  relay = await startRelay(config, { logger });
  (globalThis as { __smarthostServing?: boolean }).__smarthostServing = true;
  if (stopAsked) void stop(stopAsked);
  else if (reloadAsked) reload();
}
