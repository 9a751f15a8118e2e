/**
 * One message's DATA, from smtp-server's stream to the spool: line endings fixed (or counted, to
 * refuse), the header block read (bounded) for loop detection, Subject and From, the sender check
 * at end of data, a Received: header added, and the content streamed into enqueue().
 *
 * Guarantees:
 *  - the caller answers 250 only with the id enqueue() resolved with (enqueue resolves after fsync),
 *    and only after calling the enqueuer's acknowledge(id) when it has one;
 *  - the stream handed to enqueue() ends only when the message is whole and acceptable; a message
 *    refused on the way (oversized, bare line ends under 'reject', client gone) has that stream
 *    destroyed with an error, so the spool never commits it;
 *  - an enqueue failure becomes "451 4.3.0" with its reason, never 250.
 * A message up to IN_MEMORY_LIMIT is held in memory and handed to enqueue() whole, as a Buffer:
 * the spool then writes its two files side by side (about half the disk round trips of a
 * stream, which is most of a one-message session's latency). A bigger one is streamed as it
 * arrives, so memory stays bounded whatever the size.
 * smtp-server alone decides where DATA ends (only <CRLF>.<CRLF>), so smuggled end-of-data
 * variants stay inside this one message.
 */
import { PassThrough } from 'node:stream';
import type { Envelope, Enqueuer, PolicyDecision, QueueId } from '../core/types.ts';
import { newQueueId, randomHex } from '../core/ids.ts';
import { repairHeaderBlock } from '../core/header-repair.ts';
import { LineEndingFixer, MAX_LINE_OCTETS, wireSafeBlock, type BareLineEndingMode, type NulByteMode } from './line-endings.ts';
import { HEADER_LIMIT, findHeaderEnd, receivedHeader, summarizeHeaders, type ReceivedInfo } from './headers.ts';

export interface IntakeOptions {
  envelope: Omit<Envelope, 'size'>;
  /** The Received header's fields; its id is the queue id, made here (core/ids.ts). */
  received: Omit<ReceivedInfo, 'date' | 'id'>;
  bareLineEndings: BareLineEndingMode;
  /** NUL bytes in the content: refuse the message (554 5.6.0) or remove them. */
  nulBytes?: NulByteMode;
  maxHops: number;
  enqueue: Enqueuer;
  now: () => number;
  /** Repair headers old devices get wrong (core/header-repair.ts); devices.repairHeaders. */
  repairHeaders?: boolean;
  /** The send-as check at end of data, given the header From address. */
  senderCheck?: (headerFrom: string | undefined) => Promise<PolicyDecision>;
}

export type IntakeResult =
  | { ok: true; id: QueueId; envelope: Envelope }
  | { ok: false; code: number; status: string; message: string; aborted?: boolean };

/** The stream smtp-server hands to onData (a PassThrough with these extra fields). */
export type DataStream = NodeJS.ReadableStream & { sizeExceeded?: boolean; byteLength?: number };

/** Messages up to this size are received in memory, then enqueued in one piece. */
export const IN_MEMORY_LIMIT = 256 * 1024;

/** RFC 5322 allows no NUL in a message; X.6.0 is RFC 3463's "other or undefined media error". */
const NUL_REFUSAL: IntakeResult = { ok: false, code: 554, status: '5.6.0', message: 'Message contains NUL characters, which RFC 5322 does not allow (limits.nulBytes: strip removes them)' };

function refuse(code: number, status: string, message: string): IntakeResult {
  return { ok: false, code, status, message };
}

/**
 * The chunks as one Buffer: the chunk itself when there is only one (nearly always: the head of a
 * message comes in its first read). Buffer.concat copies even a single chunk, and at 100 KB that was
 * two 64 KB copies per message only to look for the end of the header block.
 */
function joined(chunks: Buffer[], length: number): Buffer {
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, length);
}

export async function receiveMessage(stream: DataStream, opts: IntakeOptions): Promise<IntakeResult> {
  const fixer = new LineEndingFixer(opts.bareLineEndings, opts.nulBytes ?? 'reject');
  let ended = false;
  stream.on('end', () => { ended = true; });
  stream.on('error', (err: Error) => fixer.destroy(err));
  // A stream closed without 'end' (client gone) must not leave this function waiting forever.
  stream.on('close', () => { if (!ended) fixer.destroy(new Error('connection closed before the end of the message')); });
  stream.pipe(fixer);

  // The caller acknowledges (Enqueuer.acknowledge) right before its 250: until then the spool keeps
  // the message marked as unanswered (src/queue/acknowledge.ts).
  // handOver: the Buffer given to enqueue() below is made for it and never read here again.
  const storeOptions = { handOver: true, ...(opts.enqueue.acknowledge ? { acknowledgeLater: true } : {}) };
  // Made now so that the Received header can name it, as Postfix's "with ESMTP id" does.
  const queueId = newQueueId(opts.now());
  let head: Buffer[] = [];
  let headLength = 0;
  let out: PassThrough | undefined;
  let stored: Promise<QueueId> | undefined;
  let storing = false;
  /** enqueue() rejected while the message was still streaming in. */
  let storeFailed = false;
  /** The message so far while it is small enough to keep in memory (out is unset meanwhile). */
  let held: Buffer[] = [];
  let written = 0;
  let refusal: IntakeResult | undefined;
  let envelope: Envelope | undefined;
  /** The header lines the relay wrote itself (Received, repairs) keep the wire's rules (see wireSafe). */
  let ownLinesSafe = true;

  const abort = (result: IntakeResult): void => {
    refusal ??= result;
    out?.destroy(new Error(result.ok ? 'aborted' : result.message));
  };
  const write = async (chunk: Buffer): Promise<void> => {
    if (!storing || refusal || storeFailed) return;
    written += chunk.length;
    if (!out) {
      held.push(chunk);
      if (written <= IN_MEMORY_LIMIT) return;
      // Too big to hold: stream from here on, starting with what was held.
      out = new PassThrough();
      stored = opts.enqueue.enqueue(envelope!, out, queueId, storeOptions);
      // Observed below. A spool that gave up half-way (disk full) reads no more: the stream is
      // closed so that a write waiting for 'drain' is released, and the rest is drained unwritten.
      stored.catch(() => {
        storeFailed = true;
        out?.destroy();
      });
      const first = Buffer.concat(held);
      held = [];
      chunk = first;
    }
    // The spool may have destroyed the stream itself on failing (then enqueue() rejects: the reply says why).
    if (out.destroyed) return;
    if (!out.write(chunk) && !out.destroyed) await new Promise((resolve) => { out!.once('drain', resolve); out!.once('close', resolve); });
  };
  const startStoring = async (): Promise<void> => {
    const block = joined(head, headLength);
    const end = findHeaderEnd(block);
    const summary = summarizeHeaders(end >= 0 ? block.subarray(0, end) : block);
    if (summary.received > opts.maxHops) {
      return abort(refuse(554, '5.4.6', `Too many hops: ${summary.received} Received headers (the limit is ${opts.maxHops}), probably a mail loop`));
    }
    if (opts.senderCheck) {
      const d = await opts.senderCheck(summary.from);
      if (d.verdict === 'reject' || d.verdict === 'defer') return abort(refuse(d.code, d.status, d.message));
    }
    envelope = { ...opts.envelope, size: 0, subject: summary.subject, headerFrom: summary.from };
    let content = block;
    // Only a header block found whole is repaired (one cut at HEADER_LIMIT is left as it is).
    if (opts.repairHeaders && (end >= 0 || headLength < HEADER_LIMIT)) {
      const headerEnd = end >= 0 ? end : block.length;
      const fixed = repairHeaderBlock(block.subarray(0, headerEnd), { smtputf8: opts.envelope.smtputf8, hostname: opts.received.hostname, now: new Date(opts.now()), unique: randomHex(6) });
      if (fixed.repairs.length) {
        content = Buffer.concat([fixed.block, block.subarray(headerEnd)]);
        envelope.repairs = fixed.repairs;
        ownLinesSafe &&= wireSafeBlock(fixed.block);
      }
    }
    storing = true;
    const received = Buffer.from(receivedHeader({ ...opts.received, id: queueId, date: new Date(opts.now()) }), 'latin1');
    ownLinesSafe &&= wireSafeBlock(received);
    await write(received);
    await write(content);
    head = [];
  };

  try {
    for await (const chunk of fixer as AsyncIterable<Buffer>) {
      if (refusal) continue; // drain: smtp-server replies only once the stream has ended
      if (stream.sizeExceeded) {
        abort(refuse(552, '5.3.4', 'Message too big for this relay'));
        continue;
      }
      if (opts.bareLineEndings === 'reject' && fixer.bareFound) {
        abort(refuse(550, '5.6.11', 'Message contains bare CR or LF characters; lines must end with CRLF'));
        continue;
      }
      if (fixer.nulBytes === 'reject' && fixer.nulFound) {
        abort(NUL_REFUSAL);
        continue;
      }
      if (storing) {
        await write(chunk);
        continue;
      }
      head.push(chunk);
      headLength += chunk.length;
      if (headLength >= HEADER_LIMIT || findHeaderEnd(joined(head, headLength)) >= 0) await startStoring();
    }
  } catch (err) {
    abort({ ok: false, code: 451, status: '4.3.0', message: `Message not received in full: ${(err as Error).message}`, aborted: true });
  }
  if (!refusal && stream.sizeExceeded) abort(refuse(552, '5.3.4', 'Message too big for this relay'));
  if (!refusal && opts.bareLineEndings === 'reject' && fixer.bareFound) {
    abort(refuse(550, '5.6.11', 'Message contains bare CR or LF characters; lines must end with CRLF'));
  }
  if (!refusal && fixer.nulBytes === 'reject' && fixer.nulFound) abort(NUL_REFUSAL);
  if (!refusal && !storing) await startStoring();
  if (refusal) return refusal;
  envelope!.size = written;
  if (out) {
    if (!out.destroyed) out.end();
  }
  else {
    // CRLF only (bare line ends were refused or replaced), no line over 998 octets: the delivery
    // thread can skip its own pass over every line (src/transports/smtp.ts). Only here, where the
    // record is made after the whole message was seen.
    if (ownLinesSafe && fixer.longestLine <= MAX_LINE_OCTETS && (opts.bareLineEndings === 'normalize' || fixer.bareFound === 0)) envelope!.wireSafe = true;
    stored = opts.enqueue.enqueue(envelope!, Buffer.concat(held, written), queueId, storeOptions);
    held = [];
  }
  try {
    const id = await stored!;
    return { ok: true, id, envelope: envelope! };
  } catch (err) {
    const reason = (err as Error).message.replace(/[\r\n]+/g, ' ').slice(0, 200);
    // The spool's own temporary code where it has one (452 4.3.1: disk full); never a 5xx for a local fault.
    const { responseCode, enhanced } = err as { responseCode?: unknown; enhanced?: unknown };
    if (typeof responseCode === 'number' && responseCode >= 400 && responseCode < 500 && typeof enhanced === 'string') return refuse(responseCode, enhanced, `Message could not be queued, try again later (${reason})`);
    return refuse(451, '4.3.0', `Message could not be queued, try again later (${reason})`);
  }
}
