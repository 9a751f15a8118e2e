/**
 * What the listener remembers about its SMTP sessions: who is connected (for the caps on all
 * connections and on connections per client address), what each session did (for its one log
 * line at close) and the running totals behind stats(). Admission applies, in order: the global
 * cap (421 4.3.2), the per-address cap (421 4.7.0), then connection control (554 5.7.1 at connect,
 * or remembered so RCPT refuses). Never throws; the log line never carries a password.
 */
import type { SMTPServerSession } from 'smtp-server';
import { normalizeAddress } from '../core/cidr.ts';
import type { Clock } from '../core/clock.ts';
import type { Logger } from '../core/logger.ts';
import type { PolicyDecision } from '../core/types.ts';
import type { LimitsConfig } from '../config/sections/limits.ts';
import { checkConnection, type CompiledAccess } from './access-policy.ts';
import type { ListenerStats } from './types.ts';

export interface SessionState {
  id: string;
  client: string;
  listener: string;
  startedAt: number;
  /** Outside the connection list with rejectAt 'rcpt': every RCPT is refused. */
  connectionDenied: boolean;
  /** Counted in the connection caps (admitted). */
  counted: boolean;
  messages: number;
  queueIds: string[];
  recipients: number;
  result?: string;
}

export const clientOf = (session: SMTPServerSession): string => normalizeAddress(session.remoteAddress);
export const userOf = (session: SMTPServerSession): string | undefined => (typeof session.user === 'string' ? session.user : undefined);

export class SessionTracker {
  readonly counters: Omit<ListenerStats, 'connections'> = { sessions: 0, accepted: 0, refused: 0, recipientsRefused: 0, connectionsRefused: 0 };
  private sessions = new Map<string, SessionState>();
  private perClient = new Map<string, number>();
  private open = 0;
  private clock: Clock;
  private logger: Logger;

  constructor(clock: Clock, logger: Logger) {
    this.clock = clock;
    this.logger = logger;
  }

  get(session: SMTPServerSession): SessionState | undefined {
    return this.sessions.get(session.id);
  }

  stats(): ListenerStats {
    return { connections: this.open, ...this.counters };
  }

  /** A new connection: admitted (verdict accept/none) or the reply that refuses it. */
  admit(session: SMTPServerSession, limits: LimitsConfig, access: CompiledAccess): PolicyDecision {
    const client = clientOf(session);
    const state: SessionState = {
      id: session.id, client, listener: `${session.localAddress}:${session.localPort}`, startedAt: this.clock.now(),
      connectionDenied: false, counted: false, messages: 0, queueIds: [], recipients: 0,
    };
    this.sessions.set(session.id, state);
    this.counters.sessions++;
    const deny = (d: PolicyDecision, result: string): PolicyDecision => {
      this.counters.connectionsRefused++;
      state.result = result;
      return d;
    };
    if (this.open >= limits.maxConnections) {
      return deny({ verdict: 'defer', code: 421, status: '4.3.2', message: 'Too many connections, try again later' }, 'refused: relay busy');
    }
    if ((this.perClient.get(client) ?? 0) >= limits.maxConnectionsPerClient) {
      return deny({ verdict: 'defer', code: 421, status: '4.7.0', message: 'Too many connections from your address, try again later' }, 'refused: too many connections from this address');
    }
    const decision = checkConnection(access, client);
    if (decision.verdict === 'reject') {
      if (access.rejectAt === 'connect') return deny(decision, 'refused: connection control');
      state.connectionDenied = true;
    }
    state.counted = true;
    this.open++;
    this.perClient.set(client, (this.perClient.get(client) ?? 0) + 1);
    return { verdict: 'accept' };
  }

  /** A message the spool took. */
  accepted(session: SMTPServerSession, id: string, recipients: number): void {
    this.counters.accepted++;
    const state = this.get(session);
    if (!state) return;
    state.messages++;
    state.queueIds.push(id);
    state.recipients += recipients;
  }

  /** The connection closed: release its place in the caps and write its one log line. */
  close(session: SMTPServerSession): void {
    const state = this.sessions.get(session.id);
    if (!state) return;
    this.sessions.delete(session.id);
    if (state.counted) {
      this.open--;
      const n = (this.perClient.get(state.client) ?? 1) - 1;
      if (n > 0) this.perClient.set(state.client, n);
      else this.perClient.delete(state.client);
    }
    const lastError = (session as SMTPServerSession & { error?: string }).error;
    this.logger.info({
      event: 'smtp-session',
      session: state.id,
      listener: state.listener,
      client: state.client,
      helo: session.hostNameAppearsAs || undefined,
      user: userOf(session),
      tls: session.secure,
      messages: state.messages,
      queueIds: state.queueIds,
      recipients: state.recipients,
      result: state.result ?? (state.messages > 0 ? 'ok' : lastError ? 'refused' : 'no message'),
      lastError,
      durationMs: this.clock.now() - state.startedAt,
    }, 'smtp session closed');
  }
}
