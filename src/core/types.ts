/**
 * Shared types for a message's whole path: listener → spool → transport → history.
 *
 * The Outcome is shaped like an RFC 3464 per-recipient DSN field group, so the same object
 * feeds the queue's record, the badmail reason, the NDR, history and the console's "why".
 */

/** A queue id: sortable by arrival (time-based prefix), safe as a file name. */
export type QueueId = string;

/** Where a message came from. */
export type MessageSource = 'smtp' | 'pickup' | 'test' | 'ndr' | 'resubmit';

/** Who handed us the message. */
export interface ClientInfo {
  /** Remote IP address ('' for pickup). IPv4-mapped IPv6 is normalised to IPv4. */
  address: string;
  /** HELO/EHLO name the client gave. */
  helo?: string;
  /** Authenticated SMTP user, if any. */
  user?: string;
  /** Whether the inbound session was encrypted. */
  tls?: boolean;
  source: MessageSource;
}

/** The SMTP envelope of an accepted message. */
export interface Envelope {
  /** Reverse-path; '' is the null sender (<>), which is never bounced. */
  mailFrom: string;
  /** Forward-paths, in the order the client gave them. */
  recipients: string[];
  client: ClientInfo;
  /** ISO time the message was accepted. */
  receivedAt: string;
  /** Message size in octets as stored. */
  size: number;
  /** Name of the upstream chosen at accept time (sender policy), if any. */
  upstream?: string;
  /** Route(s) chosen at accept time (src/routing), comma-separated when the message was split. */
  route?: string;
  /** Recipient → route name (src/routing); the queue record keeps it per recipient. */
  recipientRoutes?: Record<string, string>;
  /** Subject line, decoded, for logs/history (may be absent). */
  subject?: string;
  /** Header From address (for send-as checks and history). */
  headerFrom?: string;
  /** Whether the message needs SMTPUTF8 upstream. */
  smtputf8?: boolean;
  /** The content has bytes over 127: sent upstream with BODY=8BITMIME (RFC 6152). Set by the spool. */
  eightBit?: boolean;
  /** Header repairs made at accept, in words (core/header-repair.ts), for the log and history. */
  repairs?: string[];
  /**
   * Set by the SMTP intake for a message it held whole: CRLF line ends only and no line over 998
   * octets, so a transport need not normalise it again. Absent: nothing is known (pickup, NDRs).
   */
  wireSafe?: boolean;
  /** DSN parameters from the client (RET / ENVID), when given. */
  dsn?: { ret?: 'FULL' | 'HDRS'; envid?: string };
}

/** RFC 3464 action values. */
export type DsnAction = 'delivered' | 'failed' | 'delayed' | 'relayed' | 'expanded';

/** What happened to one recipient on one attempt (DSN-shaped). */
export interface Outcome {
  recipient: string;
  action: DsnAction;
  /** Enhanced status code, e.g. '2.0.0', '4.4.1', '5.7.1'. */
  status: string;
  /** The upstream's reply, sanitised (no control characters), e.g. '550 5.7.60 SMTP; Client does not have permissions…'. */
  diagnostic?: string;
  /** Reply code from the upstream, when there was one. */
  replyCode?: number;
  /** Host that answered, e.g. 'smtp.office365.com'. */
  remoteMta?: string;
  /** Transport that produced the outcome: 'smtp', 'graph', 'connector', 'spool'. */
  transport: string;
  /** The configured name of the upstream that answered (upstreams[].name), set by the delivery manager. */
  upstream?: string;
  /** Plain-words reason for an admin ("what it means, what to do"). */
  reason?: string;
  /** The connection was lost after the final dot: the upstream may have it already. */
  possibleDuplicate?: boolean;
  /**
   * The route is broken, not the message (auth refused, SMTP AUTH disabled, throttled):
   * the delivery manager parks the upstream instead of bouncing.
   */
  routeBroken?: boolean;
  /** Upstream asked us to wait (Retry-After), in milliseconds. */
  retryAfterMs?: number;
  /**
   * A Microsoft 365 budget of the sending mailbox / app / tenant is spent (SubmissionQuotaExceeded,
   * Graph 429, 432 4.3.2, 5.7.233…): the recipient waits for it; not an attempt, never a bounce.
   */
  quota?: boolean;
  /** ISO time of the outcome. */
  at: string;
}

/** A message as handed to a transport. Transports never touch the spool. */
export interface OutboundMessage {
  id: QueueId;
  mailFrom: string;
  /** Recipients still to deliver on this attempt. */
  recipients: string[];
  /** Size of the raw message in octets. */
  size: number;
  /** Reads the raw RFC 5322 message (CRLF line ends). Each call returns a fresh stream. */
  open(): NodeJS.ReadableStream;
  /** Whole message in memory, for transports that need it (Graph). */
  read(): Promise<Buffer>;
  /**
   * Where the bytes are, for a transport that hands the message to another thread: in memory (just
   * accepted) or a file to read, never to write (the spool owns it and keeps it in place until the
   * attempt is settled). With `take`, a Buffer the spool can give away comes back `owned`: no one
   * else holds it, and the caller may transfer its memory to another thread instead of copying it.
   */
  locate?(take?: boolean): MessageLocation;
  smtputf8?: boolean;
  /** The content has bytes over 127 (Envelope.eightBit). */
  eightBit?: boolean;
  /** CRLF line ends only, no line over 998 octets (Envelope.wireSafe). */
  wireSafe?: boolean;
  /** Where the transport notes the recipients an upstream took, the moment it took them (HandoffJournal). */
  journal?: HandoffJournal;
}

/**
 * A file a transport appends to the instant an upstream's reply says it took recipients, before the
 * outcome travels back to the delivery manager: one write of `prefix + recipient + "\n"` per
 * recipient taken, no fsync (what a killed process wrote survives in the page cache). The spool
 * reads it after a crash so that a message taken just before the crash is not sent again
 * (src/queue/spool.ts handoffJournal, src/queue/recovery.ts). Plain data: it crosses to a delivery thread.
 */
export interface HandoffJournal {
  file: string;
  prefix: string;
}

/** A message's bytes in memory, or its queue file, whose first `size` octets are the message. */
export type MessageLocation = { buffer: Buffer; owned?: boolean } | { file: string; size: number };

/** One upstream delivery mechanism; see src/transports/. Transports report; the queue decides. */
export interface Transport {
  /** 'smtp', 'graph', 'connector'. */
  readonly kind: string;
  /** The upstream's configured name. */
  readonly name: string;
  /** Deliver to the given recipients; returns one Outcome per recipient, never throws for SMTP-level failures. */
  send(message: OutboundMessage): Promise<Outcome[]>;
  /** Connect and authenticate without sending (doctor, console). */
  verify?(): Promise<{ ok: boolean; detail: string }>;
  close(): Promise<void>;
}

/** What an inbound policy hook decided. */
export type PolicyDecision =
  | { verdict: 'accept'; reason?: string }
  | { verdict: 'reject'; code: number; status: string; message: string }
  | { verdict: 'defer'; code: number; status: string; message: string }
  | { verdict: 'none' };

/** What the listener and pickup need of the queue: the one enqueue path. */
export interface Enqueuer {
  /**
   * Resolves only when message and envelope are fsynced in incoming/ (file and folder). `id`: made
   * beforehand with newQueueId() (core/ids.ts) by a caller that must name the message first, as
   * the Received header does ("with ESMTP id ID"); the spool checks it. Otherwise the spool makes one.
   */
  enqueue(envelope: Envelope, content: Buffer | NodeJS.ReadableStream, id?: QueueId, options?: EnqueueOptions): Promise<QueueId>;
  /**
   * For a message enqueued with acknowledgeLater: called right before its 250 is written (after it,
   * a crash keeps the message; before it, recovery may set it aside, since the client sends it
   * again: src/queue/acknowledge.ts). Throws when that could not be noted: answer 4xx, not 250.
   */
  acknowledge?(id: QueueId): void;
}

export interface EnqueueOptions {
  /** A client waits for this message's 250: the spool marks it as unanswered until acknowledge(id). */
  acknowledgeLater?: boolean;
  /**
   * The caller gives the content Buffer away: it keeps no reference and never reads it again, so the
   * spool may hand its memory to a delivery thread without a copy (locate(take)).
   */
  handOver?: boolean;
}

/** What pickup needs besides enqueue: a file it cannot read goes to badmail with its reason. */
export interface Quarantine {
  /** Writes content to badmail/ as NAME.BAD with NAME.BDR holding the reason; fsynced. */
  quarantine(content: Buffer, reason: string, originalName: string): Promise<void>;
}

/** Message states as an admin sees them (console, history, CLI). */
export type MessageState = 'queued' | 'active' | 'deferred' | 'delivered' | 'failed' | 'deleted' | 'badmail' | 'parked';

/**
 * Events the spool and the delivery manager emit for history, metrics and the console's live view.
 * Sinks must not throw and must not block: history batches them off the SMTP path.
 */
export type QueueEvent =
  | { type: 'accepted'; id: QueueId; envelope: Envelope; at: string }
  | { type: 'attempt'; id: QueueId; upstream: string; route?: string; outcomes: Outcome[]; durationMs: number; at: string }
  | { type: 'state'; id: QueueId; state: MessageState; reason?: string; at: string }
  | { type: 'upstream'; upstream: string; state: 'ok' | 'parked' | 'failing'; reason?: string; at: string };

export type QueueEventSink = (event: QueueEvent) => void;
