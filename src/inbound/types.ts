/**
 * Types of the inbound SMTP listener that other areas name: the sender check handed in by
 * `serve` (send-as policy, src/inbound/sender-policy.ts), the listener's handle and its stats.
 */
import type { PolicyDecision } from '../core/types.ts';
import type { Config } from '../config/schema.ts';
import type { TlsFailureRecord } from './device-policy.ts';

/**
 * Decides whether a client may use a sender. Called at MAIL FROM (stage 'mail') and again at the
 * end of DATA with the header From address (stage 'data'); a reject or defer is the reply the
 * client gets instead of 250.
 */
export interface SenderCheckContext {
  clientAddress: string;
  user?: string;
  mailFrom: string;
  headerFrom?: string;
  /** At stage 'data': the recipients, so the check can follow each one's route. */
  recipients?: readonly string[];
  stage: 'mail' | 'data';
}

export type SenderCheck = (ctx: SenderCheckContext) => PolicyDecision | Promise<PolicyDecision>;

export interface BoundAddress {
  address: string;
  port: number;
  tls: 'starttls' | 'implicit' | 'none';
}

export interface ListenerStats {
  /** Connections open now. */
  connections: number;
  /** Sessions since start. */
  sessions: number;
  /** Messages answered 250 since start. */
  accepted: number;
  /** Messages refused at end of DATA since start (size, bare line ends, loop, sender, spool failure). */
  refused: number;
  /** Recipients refused at RCPT since start. */
  recipientsRefused: number;
  /** Connections refused at connect since start. */
  connectionsRefused: number;
}

/**
 * One refusal the client heard, for the admin ("why did my printer get an error?"): counted in
 * /metrics by reason and listed in the console. `reason` is a short stable name (the metric label).
 */
export interface Refusal {
  at: string;
  client: string;
  reason: RefusalReason;
  stage: 'CONNECT' | 'AUTH' | 'MAIL' | 'RCPT' | 'DATA';
  /** The reply as sent, e.g. "554 5.7.1 Relay access denied". */
  reply: string;
  user?: string;
  mailFrom?: string;
  recipient?: string;
}

export type RefusalReason =
  | 'connection-denied' | 'busy' | 'too-many-connections-from-client'
  | 'auth-failed' | 'auth-locked-out' | 'auth-needs-tls' | 'auth-mechanism'
  | 'tls-required' | 'auth-required' | 'bad-parameters' | 'sender-refused'
  | 'relay-denied' | 'bad-recipient' | 'too-big' | 'bad-line-endings' | 'mail-loop' | 'local-error';

/** An SMTP listener's address and whether it is still accepting, for /healthz. */
export interface ListenerState extends BoundAddress {
  listening: boolean;
}

export interface SmtpListener {
  /** Binds every configured listener; resolves with what was bound (port 0 resolved). */
  start(): Promise<BoundAddress[]>;
  /**
   * Stops accepting connections. graceful: a message already in DATA finishes (its 250 is sent),
   * other commands get 421, sessions get up to 30 s; otherwise sessions hear 421 and close now.
   */
  stop(opts?: { graceful?: boolean }): Promise<void>;
  /** Applies policies, limits and the TLS certificate of a new configuration to new commands and connections. */
  reload(config: Config): Promise<void>;
  stats(): ListenerStats;
  /** Each bound listener and whether it still accepts connections. */
  states(): ListenerState[];
  /** Clients STARTTLS is withheld from after a failed handshake (devices.tlsFailureMemory). */
  tlsFailures?(): TlsFailureRecord[];
}
