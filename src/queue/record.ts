/**
 * The envelope record: the envelope as accepted plus each recipient's own state, the retry
 * bookkeeping and the last outcomes. It follows the message in its queue file (queue-file.ts).
 * Parsing checks the shape and throws SH_SPOOL_CORRUPT with the file name when it is wrong.
 */
import { SmarthostError } from '../core/errors.ts';
import type { Envelope, Outcome, QueueId } from '../core/types.ts';

export type RecipientState = 'pending' | 'delivered' | 'failed';

export interface RecipientRecord {
  address: string;
  state: RecipientState;
  /** Delivery attempts that included this recipient. */
  attempts: number;
  lastOutcome?: Outcome;
  /**
   * Route this recipient takes (src/routing). A message whose recipients need different routes is
   * delivered per route from this one file. Absent in records written before routes (and when no
   * routing is configured): the envelope's upstream, else the default route.
   */
  route?: string;
}

export interface QueueRecord {
  version: 1;
  id: QueueId;
  envelope: Envelope;
  recipients: RecipientRecord[];
  /** CRC-32 of the message as written (recovery checks messages in incoming/ against it). */
  crc32?: number;
  /** Attempts that ended in a deferral (drives the retry ladder). */
  attempts: number;
  /** Epoch ms of the first and last attempt. */
  firstAttemptAt?: number;
  lastAttemptAt?: number;
  /** Epoch ms when the message is due; 0 = now. */
  nextAttemptAt: number;
  /** A delay notification has been sent. */
  delayNotified: boolean;
  /** An upstream may already have this message (connection lost after the final dot, or crash while active). */
  possibleDuplicate: boolean;
  /** Why the message is in hold/ (admin, or the upstream it waits for). */
  holdReason?: string;
  /** Name of the parked upstream this message waits for (released together with it). */
  waitingForUpstream?: string;
  /** Last plain-words reason the message is waiting. */
  lastError?: string;
}

/** A new record for a message just accepted. */
export function newRecord(id: QueueId, envelope: Envelope): QueueRecord {
  return {
    version: 1,
    id,
    envelope,
    recipients: envelope.recipients.map((address) => {
      const route = envelope.recipientRoutes?.[address];
      return route ? { address, state: 'pending' as const, attempts: 0, route } : { address, state: 'pending' as const, attempts: 0 };
    }),
    attempts: 0,
    nextAttemptAt: 0,
    delayNotified: false,
    possibleDuplicate: false,
  };
}

export function serializeRecord(rec: QueueRecord): string {
  return JSON.stringify(rec);
}

/** Parses an envelope record; throws SH_SPOOL_CORRUPT naming the file when it is not one. */
export function parseRecord(text: string, file: string): QueueRecord {
  let data: QueueRecord;
  try {
    data = JSON.parse(text) as QueueRecord;
  } catch (e) {
    throw new SmarthostError('SH_SPOOL_CORRUPT', `${file}: not valid JSON (${(e as Error).message})`);
  }
  const ok = data && data.version === 1 && typeof data.id === 'string' && data.envelope && Array.isArray(data.recipients)
    && typeof data.envelope.mailFrom === 'string' && data.recipients.every((r) => typeof r.address === 'string');
  if (!ok) throw new SmarthostError('SH_SPOOL_CORRUPT', `${file}: not a smarthost envelope record`);
  return data;
}

export function pendingRecipients(rec: QueueRecord): string[] {
  return rec.recipients.filter((r) => r.state === 'pending').map((r) => r.address);
}

/**
 * The retry ladder (pure): wait before attempt n+1 after n deferred attempts. The last value repeats,
 * as IIS's "subsequent retry interval" does.
 */
export function retryDelay(ladder: readonly number[], deferredAttempts: number): number {
  if (ladder.length === 0) return 15 * 60_000;
  const i = Math.min(Math.max(deferredAttempts - 1, 0), ladder.length - 1);
  return ladder[i];
}
