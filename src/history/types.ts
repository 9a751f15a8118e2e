/**
 * The message history's public shapes: what the console, the CLI and the delivery manager see.
 *
 * History is a view of the spool, never its truth: `record()` is fire-and-forget, queries may lag
 * the spool by one batch (about 200 ms), and a store that is down makes `health()` say so.
 */
import type { Envelope, MessageState, QueueEvent } from '../core/types.ts';

/** A search over accepted messages; every field is optional and they combine with AND. */
export interface HistoryQuery {
  /** Envelope sender: a whole address exactly, anything less as a part (case-insensitive). */
  sender?: string;
  /**
   * Recipient: a whole address exactly, '@example.com' a whole domain, anything less as a part
   * ("person42", "sales@") (case-insensitive).
   */
  recipient?: string;
  /** Part of the subject (case-insensitive). */
  subject?: string;
  /** Client IP address, exact. */
  client?: string;
  /** Route name (routing): messages with recipients on it. */
  route?: string;
  status?: MessageState | 'queued';
  /** Accepted at or after. */
  from?: Date;
  /** Accepted before. */
  to?: Date;
  /** Page size: default 50, at most 500. */
  limit?: number;
  /** The `next` value of the previous page. */
  cursor?: string;
}

/** One accepted message as history knows it. */
export interface MessageSummary {
  id: string;
  receivedAt: string;
  mailFrom: string;
  recipients: string[];
  subject?: string;
  size: number;
  client: string;
  source: string;
  upstream?: string;
  /** Route(s) of the message (routing), comma-separated when it was split. */
  route?: string;
  status: string;
  /** The last reason in words (upstream reply or admin action), when there is one. */
  reason?: string;
  updatedAt: string;
}

/** One line of a message's timeline: accepted, each attempt's per-recipient outcome, each state change. */
export interface TimelineEntry {
  at: string;
  kind: 'accepted' | 'attempt' | 'state' | 'upstream';
  upstream?: string;
  recipient?: string;
  /** DSN action for attempts ('delivered' | 'delayed' | 'failed'), the state for state entries. */
  action?: string;
  status?: string;
  replyCode?: number;
  diagnostic?: string;
  reason?: string;
  durationMs?: number;
  possibleDuplicate?: boolean;
}

export interface MessageDetail extends MessageSummary {
  recipientStatus: { address: string; status?: string }[];
  timeline: TimelineEntry[];
}

export interface SearchResult {
  messages: Array<MessageSummary & { matchedRecipient?: string }>;
  /** What the search matched, in words ("messages with a recipient containing \"person42\""). */
  matched?: string;
  /** Pass as `cursor` for the next page; absent on the last page. */
  next?: string;
}

/** Counts per time bucket, for the dashboard's chart. */
export interface StatsBucket {
  start: string;
  accepted: number;
  delivered: number;
  deferred: number;
  failed: number;
}

/** A recent failure or deferral, for the dashboard's "last errors in words". */
export interface RecentError {
  at: string;
  id: string;
  recipient?: string;
  action: string;
  diagnostic?: string;
  reason?: string;
  upstream?: string;
}

export interface HistoryHealth {
  backend: 'sqlite' | 'postgres' | 'off';
  /** False while writes are failing. */
  ok: boolean;
  /** Events waiting to be written (buffer + backlog). */
  pending: number;
  /** Events dropped because the backlog was full while the store was down; never reset. */
  missed: number;
  written: number;
  lastError?: string;
  lastWriteAt?: string;
  /** Plain-words summary for the console and /healthz. */
  summary: string;
}

export interface HistoryStore {
  /** Never throws, never blocks: buffers the event for the next batch. */
  record(event: QueueEvent): void;
  search(query: HistoryQuery): Promise<SearchResult>;
  get(id: string): Promise<MessageDetail | undefined>;
  /** Buckets from `since` to now; bucketMs defaults to a size giving about 24–60 buckets. */
  stats(since: Date, bucketMs?: number): Promise<StatsBucket[]>;
  recentErrors(limit?: number): Promise<RecentError[]>;
  /**
   * Catches up with the spool after a restart: records `accepted` for each queued message history
   * does not know (its last batch was lost when the relay was killed), keeping any state already
   * recorded for it. Resolves with how many were added; rejects only when the store is unreachable.
   */
  reconcile(messages: { id: string; envelope: Envelope }[]): Promise<number>;
  /** Deletes what is older than config.history.retention; returns the number of messages removed. */
  purge(): Promise<number>;
  /** Writes everything buffered now (tests, shutdown). Resolves even if the store is down. */
  flush(): Promise<void>;
  health(): HistoryHealth;
  close(): Promise<void>;
}
