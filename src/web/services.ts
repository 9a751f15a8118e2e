/**
 * What the console needs from the running relay, as interfaces. `cli/commands/serve.ts` builds
 * these from the real queue, delivery manager, history and config; console tests pass fakes.
 * Only `import type` from other areas (style §4): the console never reaches into the spool itself.
 *
 * Every method may reject; the console turns a rejection into a JSON error with its message in
 * words (SmarthostError codes map to HTTP statuses in errors.ts). Nothing returned here may hold a
 * secret: the console masks config again before sending it, but other services must not leak.
 */
import type { Envelope, MessageState, Outcome, QueueEvent } from '../core/types.ts';
import type { ConfigProblem } from '../config/load.ts';
import type { HistoryStore } from '../history/types.ts';

/** A message in the spool as the console lists it. */
export interface QueueEntryView {
  id: string;
  state: MessageState | string;
  mailFrom: string;
  recipients: string[];
  receivedAt: string;
  size: number;
  subject?: string;
  attempts?: number;
  nextAttemptAt?: string;
  /** The last reason (the upstream's reply, or why the message waits). */
  lastReason?: string;
  /** What that reply usually means, in words; the console fills it from show() when absent. */
  lastMeaning?: string;
  upstream?: string;
  /** Route(s) of the message (routing), comma-separated when it was split. */
  route?: string;
}

export interface QueueDetailView extends QueueEntryView {
  envelope?: Envelope;
  /** Last outcome per recipient. */
  outcomes?: Outcome[];
}

export interface QueueService {
  list(filter?: { state?: string }): Promise<QueueEntryView[]>;
  show(id: string): Promise<QueueDetailView | undefined>;
  /** Makes a deferred (or parked) message due now; false when there is no such message. */
  retry(id: string): Promise<boolean>;
  /** Removes a message from the spool for good; false when there is no such message. */
  delete(id: string): Promise<boolean>;
  /** Makes every deferred message due now; resolves with how many. */
  flush(): Promise<number>;
  /** The raw message (RFC 5322), for download. */
  readMessage(id: string): Promise<Buffer | undefined>;
}

/** A file pair in badmail/: NAME.BAD (the original) and NAME.BDR (the reason in words). */
export interface BadmailEntry {
  name: string;
  at: string;
  size: number;
  /** First line of the reason, for the list. */
  summary: string;
}

export interface BadmailService {
  list(): Promise<BadmailEntry[]>;
  /** The whole .BDR text. */
  read(name: string): Promise<{ reason: string } | undefined>;
  /** Moves NAME.BAD back into pickup/ (after the admin fixed the cause); false when absent. */
  retry(name: string): Promise<boolean>;
  download(name: string): Promise<Buffer | undefined>;
}

export interface UpstreamStatus {
  name: string;
  kind: string;
  state: 'ok' | 'parked' | 'failing' | 'unknown';
  /** Why it is parked or failing, in words. */
  reason?: string;
  /** OAuth2 access token expiry, ISO time, when the upstream uses tokens. */
  tokenExpiresAt?: string;
  /** Tokens obtained since start (for /metrics). */
  tokenRenewals?: number;
}

/** One Microsoft 365 sending budget (a mailbox, a Graph app on a mailbox, a tenant's external recipients). */
export interface QuotaView {
  key: string;
  upstreams: string[];
  messagesLastMinute: number;
  maxMessagesPerMinute?: number;
  recipientsLast24h: number;
  maxRecipientsPerDay?: number;
  /** ISO time sending resumes, and why it waits; absent when it may send. */
  resumesAt?: string;
  reason?: string;
}

export interface UpstreamService {
  status(): UpstreamStatus[] | Promise<UpstreamStatus[]>;
  /** Per sending mailbox: today's usage against the limits, and when a held one resumes. */
  quotas?(): QuotaView[] | Promise<QuotaView[]>;
  /** Un-parks an upstream so queued mail is tried again; false when no such upstream. */
  release(name: string): Promise<boolean>;
}

export interface ConfigService {
  /** The running configuration (the console masks secrets again before sending it). */
  current(): unknown;
  /** The config file's text as on disk; the console masks secret values before sending it. */
  text(): string | Promise<string>;
  /** File name used in problems ("smarthost.yaml:12:3 …"). */
  source?: string;
  /** Checks text without applying it; default: the schema check of src/config/load.ts. */
  validate?(text: string): ConfigProblem[] | Promise<ConfigProblem[]>;
  /** Writes and reloads (as SIGHUP does), without dropping connections or queued mail. */
  apply(text: string): Promise<{ ok: boolean; problems?: ConfigProblem[]; message?: string }>;
}

/**
 * Optional tools from src/diagnostics/, handed in as functions when they exist. Each resolves with
 * the tool's own report object; the page renders the known fields as headings and tables, and
 * every tool also returns `text`, the same words the CLI prints, so nothing is shown as raw JSON.
 */
export interface DiagnosticsService {
  /** `spf check` with an IP (the verdict for that sender), `spf lint` without. */
  spfCheck?(input: { domain: string; ip?: string }): Promise<unknown>;
  /** `spf explain`: the record as a tree of includes with the DNS lookups counted. */
  spfExplain?(input: { domain: string }): Promise<unknown>;
  /** `spf build`: a record from the sending services the admin names. */
  spfBuild?(input: { domain: string; include: string[]; ip: string[]; mx: boolean; all: string }): Promise<unknown>;
  dnsM365?(input: { domain: string; tenantPrefix?: string; verification?: string }): Promise<unknown>;
  /** `dns propagation`: the same record asked of several public resolvers. */
  dnsPropagation?(input: { domain: string; type: string; expect?: string }): Promise<unknown>;
  headers?(input: { text: string }): Promise<unknown>;
}

/** Why the relay refused a client, as counted in /metrics and listed on the Refusals page. */
export interface RefusalView {
  at: string;
  client: string;
  /** A short stable name (connection-denied, relay-denied, auth-failed, …), the metric's label. */
  reason: string;
  /** The SMTP command refused (CONNECT, AUTH, MAIL, RCPT, DATA). */
  stage: string;
  /** The reply the client got, e.g. "554 5.7.1 Relay access denied". */
  reply: string;
  user?: string;
  mailFrom?: string;
  recipient?: string;
}

export interface RefusalService {
  /** Newest first, at most `limit`. */
  recent(limit?: number): RefusalView[];
  /** Refusals since start, by reason. */
  counts(): Record<string, number>;
  /** Live: called with each new refusal; returns the unsubscribe function. */
  subscribe?(listener: (r: RefusalView) => void): () => void;
}

/** What /healthz asks of the relay beyond the queue, upstreams and history. */
export interface HealthProbes {
  /** Resolves when a file can be written, fsynced and renamed in the spool; rejects saying why. */
  spoolWritable(): Promise<void>;
  /** Each SMTP listener: still accepting, and how full. */
  listeners(): Array<{ address: string; port: number; listening: boolean; connections: number; maxConnections: number }>;
}

export interface TestSendInput {
  from: string;
  to: string;
  subject: string;
  body: string;
}

/** Old-device compatibility as the console shows it (docs/devices.md). */
export interface DevicesStatus {
  /** Listeners accepting TLS 1.0/1.1 (tlsProfile: legacy), each with the plain-words warning. */
  oldTls: Array<{ listener: string; note: string }>;
  /** Clients STARTTLS is withheld from after a failed handshake (devices.tlsFailureMemory). */
  starttlsWithheld: Array<{ client: string; listener: string; at: string; until?: string; reason: string; offered: { versions: string[]; ciphers: string[] }; advice: string }>;
}

export interface WebServices {
  queue: QueueService;
  badmail: BadmailService;
  history: Pick<HistoryStore, 'search' | 'get' | 'stats' | 'recentErrors' | 'health'>;
  /** Queues a test message (as the seed's Email.txt would through pickup); resolves with its queue id. */
  sendTest(input: TestSendInput): Promise<{ id: string }>;
  /** Live queue events for the browser and /metrics; returns the unsubscribe function. */
  events: { subscribe(listener: (event: QueueEvent) => void): () => void };
  upstreams: UpstreamService;
  config: ConfigService;
  diagnostics?: DiagnosticsService;
  /** Days until the listener's TLS certificate expires, for /metrics. */
  tlsCertificateDaysLeft?(): number | undefined;
  refusals?: RefusalService;
  health?: HealthProbes;
  /** /healthz threshold: the oldest queued message older than this makes the relay "degraded" (ms). */
  queueAgeThresholdMs?(): number;
  /** Listeners with old TLS and clients that failed TLS (dashboard). */
  devices?: { status(): DevicesStatus };
}
