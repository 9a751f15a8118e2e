/**
 * The inbound SMTP listener: one smtp-server per `listen` entry (IPv4 or IPv6, STARTTLS, implicit
 * TLS or plain), with smarthost's policies in its hooks:
 *   connect  connection control (554 5.7.1 at connect, or remembered for RCPT), connection caps
 *            (all clients: maxConnections; per address: maxConnectionsPerClient → 421 4.7.0)
 *   AUTH     users file, PLAIN/LOGIN, only after TLS unless allowed, slowed down and cut off (auth.ts)
 *   MAIL     parameters (555 5.5.4), require TLS / AUTH (530 5.7.0), sender check (send-as)
 *   RCPT     parameters, relay restrictions on the exact domain (554 5.7.1), recipient limit (452 4.5.3)
 *   DATA     size (552 5.3.4), bare line ends, loop check, sender check on From, Received header,
 *            streamed into enqueue(); 250 only once the spool has it (intake.ts)
 * One structured log line per session at close; passwords never reach the log.
 * Start fails (rejects) when an address cannot be bound, naming it.
 */
import path from 'node:path';
import { createSecureContext } from 'node:tls';
import type { SMTPServerAuthentication, SMTPServerAuthenticationResponse, SMTPServerAddress, SMTPServerSession, SMTPServerOptions } from 'smtp-server';
import { normalizeAddress, parseRange, type Range } from '../core/cidr.ts';
import { systemClock, type Clock } from '../core/clock.ts';
import type { Logger } from '../core/logger.ts';
import type { Enqueuer, PolicyDecision } from '../core/types.ts';
import { configDirOf, type Config } from '../config/schema.ts';
import type { ListenerConfig } from '../config/sections/listen.ts';
import { SmarthostServer, type TlsFailure } from './connection.ts';
import { DevicePolicy } from './device-policy.ts';
import { checkRelay, compileAccess, CONNECTION_DENIED, listAllows, type CompiledAccess } from './access-policy.ts';
import { SessionTracker, clientOf, userOf } from './sessions.ts';
import { checkMailSession, checkParameters, checkRecipientShape } from './envelope-policy.ts';
import { AuthGuard, loadUsers } from './auth.ts';
import { receiveMessage, type DataStream } from './intake.ts';
import { loadCertificate, type Certificate } from './tls.ts';
import { legacyWarning, tlsProfileOptions } from './tls-profile.ts';
import type { BoundAddress, ListenerState, Refusal, RefusalReason, SenderCheck, SmtpListener } from './types.ts';

export interface ListenerDeps {
  enqueue: Enqueuer;
  logger: Logger;
  clock?: Clock;
  senderCheck?: SenderCheck;
  /** Told of every refusal a client hears (metrics and the console's Refusals page); must not throw. */
  onRefusal?: (refusal: Refusal) => void;
}

/** A PolicyDecision that says no, as the Error smtp-server turns into the reply. */
function replyError(d: { code: number; status: string; message: string }): Error & { responseCode: number } {
  return Object.assign(new Error(`${d.status} ${d.message}`), { responseCode: d.code });
}

function refused(d: PolicyDecision): (Error & { responseCode: number }) | undefined {
  return d.verdict === 'reject' || d.verdict === 'defer' ? replyError(d) : undefined;
}

function resolveFile(config: Config, file: string): string {
  return path.resolve(configDirOf(config), file);
}

export function createSmtpListener(initialConfig: Config, deps: ListenerDeps): SmtpListener {
  const clock = deps.clock ?? systemClock;
  const logger = deps.logger;
  let config = initialConfig;
  let access: CompiledAccess = compileAccess(config.access);
  const guard = new AuthGuard(new Map(), { maxFailures: config.auth.maxFailures, failureDelay: config.auth.failureDelay, clock });
  const servers: SmarthostServer[] = [];
  /** Each server's listen entry (its TLS mode, for a certificate reload). */
  const listenerOf = new Map<SmarthostServer, ListenerConfig>();
  const sessions = new SessionTracker(clock, logger);
  const counters = sessions.counters;
  const devices = new DevicePolicy(config, clock);

  /** Reports a refusal (when there is one) to onRefusal, and passes it on unchanged. */
  function report<E extends Error | undefined>(err: E, reason: RefusalReason, stage: Refusal['stage'], session: SMTPServerSession, extra: Partial<Refusal> = {}): E {
    if (!err || !deps.onRefusal) return err;
    try {
      deps.onRefusal({
        at: new Date(clock.now()).toISOString(), client: clientOf(session), reason, stage,
        reply: `${(err as Error & { responseCode?: number }).responseCode ?? 550} ${err.message}`,
        user: userOf(session), mailFrom: session.envelope?.mailFrom ? session.envelope.mailFrom.address : undefined, ...extra,
      });
    } catch (e) {
      logger.warn({ err: (e as Error).message }, 'recording a refusal failed');
    }
    return err;
  }

  /** Reads the users file of a configuration (throws naming the file when it is bad). */
  const usersOf = (c: Config): Map<string, string> => (c.auth.enabled && c.auth.usersFile ? loadUsers(resolveFile(c, c.auth.usersFile)) : new Map());

  function onConnect(session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    const d = sessions.admit(session, config.limits, access);
    const reason: RefusalReason = d.verdict === 'defer' ? (d.status === '4.3.2' ? 'busy' : 'too-many-connections-from-client') : 'connection-denied';
    cb(report(refused(d), reason, 'CONNECT', session));
  }

  function onAuth(listener: ListenerConfig, auth: SMTPServerAuthentication, session: SMTPServerSession, cb: (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void): void {
    if (auth.method !== 'PLAIN' && auth.method !== 'LOGIN') return cb(report(replyError({ code: 504, status: '5.5.4', message: 'Unrecognized authentication type' }), 'auth-mechanism', 'AUTH', session));
    if (!session.secure && !config.auth.allowInsecure) {
      return cb(report(replyError({ code: 538, status: '5.7.11', message: 'Encryption required: use STARTTLS before AUTH' }), 'auth-needs-tls', 'AUTH', session));
    }
    const client = clientOf(session);
    guard.check(client, auth.username ?? '', auth.password ?? '').then((d) => {
      if (d.verdict === 'accept') return cb(null, { user: auth.username });
      const state = sessions.get(session);
      if (state && d.verdict === 'defer') state.result = 'closed: too many failed AUTH attempts';
      logger.warn({ event: 'smtp-auth-failed', session: session.id, client, user: auth.username, listener: `${listener.address}:${listener.port}` }, 'AUTH failed');
      cb(report(refused(d), d.verdict === 'defer' ? 'auth-locked-out' : 'auth-failed', 'AUTH', session, { user: auth.username }));
    }, (err: Error) => cb(replyError({ code: 454, status: '4.7.0', message: `Temporary authentication failure (${err.message})` })));
  }

  function onMailFrom(listener: ListenerConfig, address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    const extra = { mailFrom: address.address };
    const run = async (): Promise<Error | undefined> => {
      const params = refused(checkParameters(address.args, 'MAIL'));
      if (params) return report(params, 'bad-parameters', 'MAIL', session, extra);
      const sessionCheck = refused(checkMailSession({ secure: session.secure, requireTls: listener.requireTls, user: userOf(session), authRequired: config.auth.required }));
      if (sessionCheck) return report(sessionCheck, /STARTTLS/.test(sessionCheck.message) ? 'tls-required' : 'auth-required', 'MAIL', session, extra);
      if (deps.senderCheck) return report(refused(await deps.senderCheck({ clientAddress: clientOf(session), user: userOf(session), mailFrom: address.address, stage: 'mail' })), 'sender-refused', 'MAIL', session, extra);
      return undefined;
    };
    run().then((err) => cb(err), (err: Error) => cb(replyError({ code: 451, status: '4.3.0', message: `Sender check failed, try again later (${err.message})` })));
  }

  function onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    const state = sessions.get(session);
    let reason: RefusalReason = 'relay-denied';
    const decide = (): PolicyDecision => {
      const params = checkParameters(address.args, 'RCPT');
      if (params.verdict !== 'none') return (reason = 'bad-parameters'), params;
      if (state?.connectionDenied) return (reason = 'connection-denied'), CONNECTION_DENIED;
      const shape = checkRecipientShape(address.address);
      if (shape.verdict !== 'none') return (reason = 'bad-recipient'), shape;
      return checkRelay(access, { clientAddress: clientOf(session), user: userOf(session), recipient: address.address });
    };
    const err = refused(decide());
    if (err) counters.recipientsRefused++;
    cb(report(err, reason, 'RCPT', session, { recipient: address.address }));
  }

  function onData(stream: DataStream, session: SMTPServerSession, cb: (err?: Error | null, message?: string) => void): void {
    const mailFrom = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
    const recipients = session.envelope.rcptTo.map((r) => r.address);
    const client = clientOf(session);
    const user = userOf(session);
    const senderCheck = deps.senderCheck;
    receiveMessage(stream, {
      envelope: {
        mailFrom,
        recipients,
        client: { address: client, helo: session.hostNameAppearsAs || undefined, user, tls: session.secure, source: 'smtp' },
        receivedAt: new Date(clock.now()).toISOString(),
        smtputf8: session.envelope.smtpUtf8 || undefined,
      },
      received: {
        helo: session.hostNameAppearsAs || undefined,
        clientHostname: session.clientHostname,
        clientAddress: client,
        hostname: config.hostnameResolved,
        protocol: session.transmissionType || 'ESMTP',
        recipient: recipients.length === 1 ? recipients[0] : undefined,
      },
      bareLineEndings: config.limits.bareLineEndings,
      nulBytes: config.limits.nulBytes,
      repairHeaders: config.devices.repairHeaders,
      maxHops: config.delivery.maxHops,
      enqueue: deps.enqueue,
      now: () => clock.now(),
      senderCheck: senderCheck ? async (headerFrom) => senderCheck({ clientAddress: client, user, mailFrom, headerFrom, recipients, stage: 'data' }) : undefined,
    }).then((result) => {
      if (result.ok) {
        // The "no 250 yet" mark is cleared first, then the 250 is written (src/queue/acknowledge.ts):
        // a crash in between keeps the message (at worst two copies), never the other way round.
        try {
          deps.enqueue.acknowledge?.(result.id);
        } catch (err) {
          counters.refused++;
          return cb(report(replyError({ code: 451, status: '4.3.0', message: `Local error, message not acknowledged (${(err as Error).message})` }), 'local-error', 'DATA', session));
        }
        sessions.accepted(session, result.id, recipients.length);
        if (result.envelope.repairs) logger.info({ event: 'smtp-headers-repaired', session: session.id, client, id: result.id, repairs: result.envelope.repairs }, `message ${result.id} from ${client}: ${result.envelope.repairs.join('; ')}`);
        return cb(null, `2.0.0 Ok: queued as ${result.id}`);
      }
      counters.refused++;
      const reason: RefusalReason = result.code === 552 ? 'too-big' : result.status === '5.6.11' ? 'bad-line-endings' : result.status === '5.4.6' ? 'mail-loop'
        : result.status.startsWith('5.7.') ? 'sender-refused' : 'local-error';
      // A client that left mid-DATA heard nothing: not a refusal to show.
      cb(result.aborted ? replyError(result) : report(replyError(result), reason, 'DATA', session, { recipient: recipients.join(', ') }));
    }, (err: Error) => {
      counters.refused++;
      cb(report(replyError({ code: 451, status: '4.3.0', message: `Local error, message not queued (${err.message})` }), 'local-error', 'DATA', session));
    });
  }

  /** Commands a listener does not offer: AUTH when off (or without TLS unless allowed), STARTTLS without it. */
  function disabledCommands(listener: ListenerConfig, c: Config): string[] {
    const disabled: string[] = [];
    if (!c.auth.enabled || (listener.tls === 'none' && !c.auth.allowInsecure)) disabled.push('AUTH');
    if (listener.tls !== 'starttls') disabled.push('STARTTLS');
    return disabled;
  }

  function serverOptions(listener: ListenerConfig, cert: Certificate | undefined): SMTPServerOptions {
    return {
      name: config.hostnameResolved,
      banner: 'smarthost ready',
      secure: listener.tls === 'implicit',
      key: cert?.key,
      cert: cert?.cert,
      ...tlsProfileOptions(listener.tlsProfile),
      hideSTARTTLS: listener.tls !== 'starttls',
      disabledCommands: disabledCommands(listener, config),
      authMethods: ['PLAIN', 'LOGIN'],
      authOptional: true,
      allowInsecureAuth: config.auth.allowInsecure,
      size: config.limits.maxMessageSize,
      rejectOversized: true,
      maxRecipients: config.limits.maxRecipients,
      maxCommandLength: config.limits.maxCommandLength,
      maxClients: config.limits.maxConnections,
      socketTimeout: config.limits.idleTimeout,
      disableReverseLookup: true,
      hideENHANCEDSTATUSCODES: false,
      hideDSN: true,
      hideREQUIRETLS: true,
      logger: false,
      onConnect: (session, cb) => onConnect(session, cb),
      onClose: (session) => sessions.close(session),
      onAuth: (auth, session, cb) => onAuth(listener, auth, session, cb),
      onMailFrom: (address, session, cb) => onMailFrom(listener, address, session, cb),
      onRcptTo: (address, session, cb) => onRcptTo(address, session, cb),
      onData: (stream, session, cb) => onData(stream as DataStream, session, cb),
    };
  }

  /** One line per failed handshake: who, what it offered, and the setting that would let it in. */
  function onTlsFailure(listener: ListenerConfig, server: SmarthostServer, f: TlsFailure): void {
    const addr = server.server.address();
    const where = `${listener.address}:${typeof addr === 'object' && addr ? addr.port : listener.port}`;
    const r = devices.recordFailure(listener, where, f);
    logger.warn({
      event: 'smtp-tls-failed', session: f.session, client: r.client, listener: where, stage: f.stage, tlsProfile: listener.tlsProfile,
      offeredVersions: r.offered.versions, offeredCiphers: r.offered.ciphers.slice(0, 40), reason: r.reason, starttlsWithheldUntil: r.until, advice: r.advice,
    }, `TLS handshake with ${r.client} failed on ${where}: ${r.reason}${r.offered.versions.length ? ` (offered ${r.offered.versions.join(', ')})` : ''}; ${r.advice}`);
  }

  async function start(): Promise<BoundAddress[]> {
    guard.update(usersOf(config), config.auth);
    if (config.auth.enabled && !config.auth.usersFile) logger.warn({ event: 'smtp-config' }, 'auth.enabled is on but no auth.usersFile is set: no client can log in');
    if (config.auth.required && !config.auth.enabled) logger.warn({ event: 'smtp-config' }, 'auth.required is on but auth.enabled is off: every client will be refused at MAIL FROM');
    const needsCert = config.listen.some((l) => l.tls !== 'none');
    const cert = needsCert ? await loadCertificate(config, logger, clock) : undefined;
    const bound: BoundAddress[] = [];
    for (const listener of config.listen) {
      const proxyFrom = listener.proxyProtocol.map(parseRange).filter((r): r is Range => r !== undefined);
      const server = new SmarthostServer(serverOptions(listener, cert), { command: config.limits.commandDeadline, data: config.limits.dataDeadline }, proxyFrom);
      server.ehloHidden = (c) => devices.hidden(listener, c.localPort, c.remoteAddress, c.secure);
      server.pregreetWait = (c) => (config.devices.pregreetWait > 0 && !listAllows(access.relay, normalizeAddress(c.remoteAddress)) ? config.devices.pregreetWait : 0);
      server.on('tls-failure', (f: TlsFailure) => onTlsFailure(listener, server, f));
      server.on('error', (err: Error & { tlsReported?: boolean }) => err.tlsReported || logger.warn({ event: 'smtp-error', err: err.message, listener: `${listener.address}:${listener.port}` }, 'smtp connection error'));
      await new Promise<void>((resolve, reject) => {
        const onError = (err: Error): void => reject(new Error(`cannot listen on ${listener.address}:${listener.port}: ${err.message}`));
        server.server.once('error', onError);
        server.server.listen(listener.port, listener.address, () => {
          server.server.removeListener('error', onError);
          resolve();
        });
      }).catch(async (err) => {
        await stop({ graceful: false });
        throw err;
      });
      servers.push(server);
      listenerOf.set(server, listener);
      const addr = server.server.address();
      const port = typeof addr === 'object' && addr ? addr.port : listener.port;
      bound.push({ address: listener.address, port, tls: listener.tls });
      logger.info({ event: 'smtp-listen', address: listener.address, port, tls: listener.tls, tlsProfile: listener.tls === 'none' ? undefined : listener.tlsProfile, proxyProtocol: listener.proxyProtocol.length > 0 }, `listening for SMTP on ${listener.address}:${port}`);
      if (listener.tls !== 'none' && listener.tlsProfile === 'legacy') logger.warn({ event: 'smtp-legacy-tls', address: listener.address, port }, legacyWarning(`${listener.address}:${port}`));
    }
    return bound;
  }

  async function stop(opts: { graceful?: boolean } = {}): Promise<void> {
    const all = servers.splice(0);
    listenerOf.clear();
    await Promise.all(all.map((server) => new Promise<void>((resolve) => {
      // Graceful: sessions get up to 30 s to finish; otherwise they hear 421 now.
      server.options.closeTimeout = opts.graceful ? 30_000 : 1;
      server.close(() => resolve());
      if (opts.graceful) server.shutdownSessions();
    })));
  }

  /**
   * All or nothing: a bad users file or TLS certificate (unreadable, or a key that does not match
   * it) throws before anything of the new configuration applies. The certificate is read again, so
   * a renewed one (same files, or new tls.cert/tls.key) serves the next TLS handshake; sessions
   * already encrypted keep theirs.
   */
  async function reload(next: Config): Promise<void> {
    const users = usersOf(next);
    const tlsServers = servers.filter((server) => listenerOf.get(server)?.tls !== 'none');
    const cert = tlsServers.length ? await loadCertificate(next, logger, clock) : undefined;
    if (cert) createSecureContext({ key: cert.key, cert: cert.cert });
    config = next;
    access = compileAccess(next.access);
    devices.update(next);
    guard.update(users, next.auth);
    for (const server of servers) {
      Object.assign(server.options, {
        // read per connection and per command by smtp-server, so new sessions see them
        name: next.hostnameResolved,
        disabledCommands: disabledCommands(listenerOf.get(server)!, next),
        size: next.limits.maxMessageSize,
        maxRecipients: next.limits.maxRecipients,
        maxCommandLength: next.limits.maxCommandLength,
        maxClients: next.limits.maxConnections,
        socketTimeout: next.limits.idleTimeout,
        allowInsecureAuth: next.auth.allowInsecure,
      });
      server.deadlines = { command: next.limits.commandDeadline, data: next.limits.dataDeadline };
    }
    if (cert) for (const server of tlsServers) server.updateSecureContext({ key: cert.key, cert: cert.cert });
    logger.info({ event: 'smtp-reload', certificate: cert ? { file: cert.source, notAfter: cert.notAfter.toISOString() } : undefined },
      'listener policies and TLS certificate reloaded (listen addresses change on restart only)');
  }

  function states(): ListenerState[] {
    return servers.map((server) => {
      const l = listenerOf.get(server);
      const addr = server.server.address();
      return { address: l?.address ?? '', port: typeof addr === 'object' && addr ? addr.port : l?.port ?? 0, tls: l?.tls ?? 'none', listening: server.server.listening };
    });
  }

  return {
    start,
    stop,
    reload,
    stats: () => sessions.stats(),
    states,
    tlsFailures: () => devices.failedClients(),
  };
}
