/**
 * The spool: the only writer of queue files (Postfix's cleanup + queue manager's file side).
 *
 * Guarantees:
 * - enqueue() resolves only when the queue file (the message and its envelope, queue-file.ts) is
 *   fsynced and its name is fsynced in incoming/ — only then may the client hear 250. Concurrent
 *   enqueues share one directory fsync (group commit, durable.ts), and the file's sync runs beside it.
 * - The queue file's folder is the state (paths.ts). A claim renames it into active/; other moves
 *   lock it first so the CLI and a running relay never act on the same message at once.
 * - On open (unless `recover: false`, for the CLI beside a running relay), recovery runs first
 *   (recovery.ts): half-written files dropped, messages caught in active/ put back in line and marked
 *   as possible duplicates.
 *
 * - A message enqueued whole (a Buffer) is kept in memory until it is first settled, and delivery
 *   reads it from there instead of from its file (same bytes; bounded, see FRESH_CONTENT_LIMIT).
 *
 * The in-memory index mirrors the folders; rescan() re-reads them so changes made by another process
 * (the CLI moving files) are noticed. Failures to write throw SmarthostError SH_SPOOL_WRITE with the
 * reason; the message is then not queued and the caller must not answer 250.
 */
import { chmodSync, createReadStream, fchmod, fchmodSync, fstatSync, ftruncateSync, openSync, renameSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { mkdir, readdir, readFile, rename, open, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { Clock } from '../core/clock.ts';
import type { Logger } from '../core/logger.ts';
import { SmarthostError } from '../core/errors.ts';
import { isQueueId, newQueueId, resolveIdPrefix } from '../core/ids.ts';
import type { Envelope, EnqueueOptions, Enqueuer, HandoffJournal, MessageLocation, MessageState, Quarantine, QueueEvent, QueueEventSink, QueueId } from '../core/types.ts';
import { spoolPaths, SPOOL_FOLDERS, QUEUE_STATES, QUEUE_FILE_EXT, LOCKED_SUFFIX, DELIVERED_LOG, type QueueFolder, type SpoolPaths } from './paths.ts';
import { DirectorySyncer, SpareFiles, closeQuietly, writeOpen, writeOpenNow, unlinkIfExists, unlinkQuietly, type OpenWrite, type TrailerOf } from './durable.ts';
import { newRecord, pendingRecipients, type QueueRecord } from './record.ts';
import { encodeTrailer, readQueueFile, rewriteQueueFile } from './queue-file.ts';
import { writeBadmail } from './badmail.ts';
import { recoverSpool } from './recovery.ts';
import { QUEUE_FILE_MODE, UNANSWERED_MODE, currentBootId, swapBootId } from './acknowledge.ts';

export interface SpoolDeps {
  clock: Clock;
  logger: Logger;
  events?: QueueEventSink;
  /** Run crash recovery on open (default true). The CLI passes false: the relay may be running. */
  recover?: boolean;
  /** Tests: where the kernel's boot id is read (acknowledge.ts); default /proc/sys/kernel/random/boot_id. */
  bootIdSource?: string;
}

export interface QueueEntry {
  state: QueueFolder;
  record: QueueRecord;
}

export interface ListFilter {
  state?: QueueFolder;
  /** Substring matched against sender and recipients (case-insensitive). */
  address?: string;
}

export interface MessageDetails extends QueueEntry {
  /** The message's header section (first 64 KB at most). */
  headerPreview: string;
}

export interface Spool extends Enqueuer, Quarantine {
  readonly paths: SpoolPaths;
  readonly syncer: DirectorySyncer;
  list(filter?: ListFilter): Promise<QueueEntry[]>;
  /** The full id for an id or a unique start of one; throws naming the matches when several. */
  resolveId(prefix: string): Promise<QueueId>;
  show(id: QueueId): Promise<MessageDetails>;
  /** Makes a deferred or held message due now. */
  retry(id: QueueId): Promise<void>;
  /** Removes a message from the queue (not to badmail); a 'deleted' event records it. */
  delete(id: QueueId, reason?: string): Promise<void>;
  /** Makes every deferred message due now; returns how many. */
  flush(): Promise<number>;
  hold(id: QueueId, reason?: string): Promise<void>;
  release(id: QueueId): Promise<void>;
  readMessage(id: QueueId): Promise<Buffer>;
  openMessage(id: QueueId): Readable;
  /**
   * The message's bytes in memory (just accepted) or its file in the spool, for another thread to
   * read; with `take`, the in-memory Buffer may be given away (owned: see OutboundMessage.locate).
   */
  locateMessage(id: QueueId, take?: boolean): MessageLocation;
  /** Where a transport notes the recipients of this message an upstream took (delivered.log; recovery.ts reads it). */
  handoffJournal(id: QueueId): HandoffJournal;
  /** Re-reads the folders (picks up changes made by another process). */
  rescan(): Promise<void>;
  /** Messages due at `now` in incoming/ and deferred/, oldest first. */
  due(now: number, limit: number): QueueRecord[];
  /** Earliest nextAttemptAt among deferred messages (for the delivery manager's timer). */
  nextDue(): number | undefined;
  /** Moves a due message to active/; undefined when it is gone or busy. */
  claim(id: QueueId): Promise<QueueRecord | undefined>;
  /** Writes an active message's record and moves it to `to`, or removes it ('done'). */
  settle(record: QueueRecord, to: QueueFolder | 'done'): Promise<void>;
  /** Writes the message to badmail/ with X-Sender/X-Receiver for `recipients` and the .BDR text. */
  toBadmail(record: QueueRecord, recipients: string[], bdrText: string): Promise<string>;
  /**
   * Clears the "no 250 yet" mark of a message enqueued with acknowledgeLater (acknowledge.ts); the
   * listener calls it just before writing the 250. Until then the message is not handed to
   * delivery. Throws when the mark could not be cleared: the caller must then not answer 250.
   * Does nothing for a message enqueued without the option.
   */
  acknowledge(id: QueueId): void;
  /** Called after each enqueue (the delivery manager kicks itself). */
  onEnqueued(listener: (id: QueueId) => void): void;
  emit(event: QueueEvent): void;
  /** Writes, fsyncs and renames a probe file as an accept would, then removes it (health checks). */
  probe(): Promise<void>;
  close(): Promise<void>;
}

/** Opens (creating folders, recovering) the spool under config.mailrootPath. */
export async function openSpool(config: { mailrootPath: string; queue?: { keepUnacknowledged?: boolean } }, deps: SpoolDeps): Promise<Spool> {
  const paths = spoolPaths(config.mailrootPath);
  await checkMailroot(config.mailrootPath, paths);
  const syncer = new DirectorySyncer();
  const keepAll = config.queue?.keepUnacknowledged === true;
  // the relay only (the CLI beside it neither recovers nor marks): boot id read, then replaced
  const bootId = deps.recover !== false ? await currentBootId(deps.bootIdSource) : undefined;
  const boot = deps.recover !== false ? await swapBootId(paths.root, bootId) : { sameBoot: false };
  const recovered = deps.recover !== false ? await recoverSpool(paths, syncer, deps.logger, { moveAsideUnanswered: boot.sameBoot && !keepAll }) : undefined;
  const spool = new FolderSpool(paths, syncer, deps, bootId !== undefined && !keepAll);
  await spool.rescan();
  // history and the console learn the end of messages an upstream took just before the stop
  const at = new Date(deps.clock.now()).toISOString();
  for (const id of recovered?.takenIds ?? []) spool.emit({ type: 'state', id, state: 'delivered', reason: 'delivered just before an unclean stop (noted by the delivery thread; not sent again)', at });
  for (const u of recovered?.unanswered ?? []) spool.emit({ type: 'state', id: u.id, state: 'badmail', reason: u.reason, at });
  return spool;
}

/**
 * Refuses to start on a mailroot that cannot hold mail, naming it and why, rather than failing on
 * the first message: a read-only file system or folder, or a mailroot whose parent folder is
 * missing (an unmounted disk, a typo), which is not created silently. The mailroot itself and its
 * subfolders are created if missing. Probe: a file created, written, fsynced and removed in tmp/.
 */
async function checkMailroot(root: string, paths: SpoolPaths): Promise<void> {
  const refuse = (what: string, e: unknown): never => {
    throw new SmarthostError('SH_SPOOL_WRITE', `the mailroot ${root} ${what} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); set mailroot in the config to a writable folder on a local disk`, { cause: e });
  };
  await mkdir(root).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'EEXIST') refuse(e.code === 'ENOENT' ? 'cannot be created: its parent folder does not exist' : 'cannot be created', e);
  });
  for (const f of SPOOL_FOLDERS) await mkdir(paths.folder(f), { recursive: true }).catch((e) => refuse(`has a folder ${f}/ that cannot be created`, e));
  await probeWrite(paths, `.write-test-${process.pid}`).catch((e) => refuse('is not writable', e));
}

/**
 * Writes a file in tmp/ and fsyncs it, as an accept does, and with `into` renames it into that
 * folder as an accept's commit does, then removes it. The name has no queue-file extension, so no
 * listing ever sees it. Permissions alone would not tell: root writes anyway.
 */
async function probeWrite(paths: SpoolPaths, name: string, into?: QueueFolder): Promise<void> {
  const tmp = path.join(paths.folder('tmp'), name);
  const dest = into ? path.join(paths.folder(into), name) : undefined;
  try {
    const fh = await open(tmp, 'w');
    try {
      await fh.write('probe\n');
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (dest) await rename(tmp, dest);
  } finally {
    await unlinkIfExists(tmp).catch(() => false);
    if (dest) await unlinkIfExists(dest).catch(() => false);
  }
}

/**
 * Bytes of just-accepted messages kept in memory for their first delivery, so the delivery does
 * not read back (open, read, close: three thread-pool trips) what the intake handed over moments
 * ago. Counted by the memory each Buffer keeps alive (a small one may sit in an 8 KB pool slab).
 * Beyond the limit (a backlog), messages are read from their file as before.
 */
const FRESH_CONTENT_LIMIT = 32 * 1024 * 1024;

/** fchmod in the thread pool (fs/promises has it only for a FileHandle; the spool keeps plain descriptors). */
const fchmodAsync = promisify(fchmod);

/**
 * Delivered messages' files leave the queue folders in batches of this many, or after this long
 * (removeLater). A crash re-delivers what waits here: with 100 ms, four SIGKILLs under load
 * (test/e2e/crash-loop.test.ts) brought 46-67 messages twice; with 20 ms 8-11, at no measurable cost.
 */
const REMOVAL_BATCH = 64;
const REMOVAL_DELAY_MS = 20;

/**
 * Queue files of messages not yet settled kept open (written whole, from memory), so that once
 * delivered the file is given back to the spares instead of deleted (durable.ts, SpareFiles). Beyond
 * this many (a backlog), files are closed after their 250 as before.
 */
const OPEN_FILES_LIMIT = 256;

/**
 * A message still waiting for acknowledge() this long is released to delivery anyway (and its mark
 * cleared): its listener never called back, a bug; delivering it repeats at worst a copy the client
 * sends again, as before the mark existed. The listener acknowledges within microseconds.
 */
const UNANSWERED_GRACE_MS = 60_000;

/** A lock this old belongs to a process that died (moves take milliseconds). */
const STALE_LOCK_MS = 60_000;

interface IndexEntry {
  state: QueueFolder;
  record: QueueRecord;
  /** Operation counter value of the last change (rescan leaves newer entries alone). */
  touched: number;
}

class FolderSpool implements Spool {
  readonly paths: SpoolPaths;
  readonly syncer: DirectorySyncer;
  private deps: SpoolDeps;
  private index = new Map<QueueId, IndexEntry>();
  private busy = new Set<QueueId>();
  private ops = 0;
  private listeners: Array<(id: QueueId) => void> = [];
  /** Messages due now, in the order they became due (see due()). */
  private ready = new Set<QueueId>();
  /** Earliest nextAttemptAt in deferred/ not yet in `ready`. */
  private nextDeferredAt = Infinity;
  /** Content of accepted messages not yet settled, identical to their fsynced file (see FRESH_CONTENT_LIMIT). */
  private fresh = new Map<QueueId, Buffer>();
  private freshBytes = 0;
  /** Fresh content its enqueuer handed over (EnqueueOptions.handOver) and not yet lent to anyone: locateMessage(id, true) may give it away. */
  private givable = new Set<QueueId>();
  /** Files created ahead in tmp/ for the next messages (durable.ts). */
  private spares: SpareFiles;
  /** Queue files kept open (see OPEN_FILES_LIMIT): descriptor, size in octets and mode (acknowledge.ts). */
  private openFiles = new Map<QueueId, { fd: number; size: number; mode: number }>();
  /** Write SMTP clients' messages with the "no 250 yet" mark (acknowledge.ts): a boot id exists and queue.keepUnacknowledged is off. */
  private readonly marking: boolean;
  /** Messages committed with the mark whose acknowledge() has not come yet, and since when: not handed to delivery. */
  private unanswered = new Map<QueueId, number>();
  /** due() passed over an unanswered message: acknowledge() kicks the delivery manager. */
  private passedOver = false;
  /** Files of delivered messages waiting for the next batch (see removeLater). */
  private removals = new Map<QueueId, string>();
  /** Ids whose batch of unlinks is running. */
  private beingRemoved = new Set<QueueId>();
  private removalTimer: NodeJS.Timeout | undefined;
  private removing: Promise<void> = Promise.resolve();
  /** delivered.log (see markDelivered), opened on the first delivery, and what was written to it since it was last emptied. */
  private deliveredFd: number | undefined;
  private deliveredBytes = 0;

  constructor(paths: SpoolPaths, syncer: DirectorySyncer, deps: SpoolDeps, marking = false) {
    this.paths = paths;
    this.syncer = syncer;
    this.deps = deps;
    this.marking = marking;
    // Spares carry the mark already when SMTP clients' messages get it (their mode set in the thread
    // pool, not by an fchmod on the event loop before each 250: a metadata call waits on ext4's journal
    // behind the fsyncs, 50-120 µs measured with strace under the bench's load).
    this.spares = new SpareFiles(paths.folder('tmp'), undefined, undefined, marking ? UNANSWERED_MODE : QUEUE_FILE_MODE);
  }

  emit(event: QueueEvent): void {
    try {
      this.deps.events?.(event);
    } catch (e) {
      this.deps.logger.warn({ err: e }, 'queue event sink failed');
    }
  }

  private stateEvent(id: QueueId, state: MessageState, reason?: string): void {
    this.emit({ type: 'state', id, state, reason, at: new Date(this.deps.clock.now()).toISOString() });
  }

  onEnqueued(listener: (id: QueueId) => void): void {
    this.listeners.push(listener);
  }

  async enqueue(envelope: Envelope, content: Buffer | NodeJS.ReadableStream, givenId?: QueueId, options?: EnqueueOptions): Promise<QueueId> {
    const id = givenId ?? newQueueId(this.deps.clock.now());
    if (givenId !== undefined && (!isQueueId(givenId) || this.index.has(givenId) || this.busy.has(givenId))) {
      throw new SmarthostError('SH_SPOOL_WRITE', `queue id ${JSON.stringify(givenId)} is malformed or already in use`, { responseCode: 451, enhanced: '4.3.0' });
    }
    const tmpFile = this.paths.queueFile('tmp', id);
    const committed = this.paths.queueFile('incoming', id);
    let record: QueueRecord | undefined;
    // the envelope record follows the message in the same file; it holds what is learnt while
    // writing the message (size, CRC-32, 8-bit content)
    const trailer: TrailerOf = (info) => {
      record = newRecord(id, { ...envelope, size: info.size, ...(info.ascii ? {} : { eightBit: true }) });
      record.crc32 = info.crc;
      return encodeTrailer(record);
    };
    let written: (OpenWrite & { file: string; fd?: number; fileSize?: number }) | undefined;
    const mark = this.marking && options?.acknowledgeLater === true;
    const mode = mark ? UNANSWERED_MODE : QUEUE_FILE_MODE;
    // busy until committed: a concurrent rescan must not hand the message to delivery before its 250
    this.busy.add(id);
    try {
      // a message in memory is written synchronously (durable.ts says why)
      written = Buffer.isBuffer(content) ? writeOpenNow(tmpFile, content, this.spares, trailer, mode) : { ...(await writeOpen(tmpFile, content, trailer, mode)), file: tmpFile };
      // The rename first, then the file's and the folder's syncs at once: one fsync round per message.
      // Until both have finished the client has no 250; recovery drops from incoming/ a file whose
      // envelope or message does not check out (queue-file.ts, recovery.ts). The rename stays on the
      // event loop: moved into the thread pool (with the claim's below) it queued behind the fsyncs
      // and cost 10-25% of throughput at 10 and 50 sessions (docs/performance.md).
      renameSync(written.file, committed);
      await Promise.all([written.datasync(), this.syncer.sync(this.paths.folder('incoming'))]);
      // durable now; closing need not delay the 250
      if (written.fd !== undefined && written.fileSize !== undefined && this.openFiles.size < OPEN_FILES_LIMIT) this.openFiles.set(id, { fd: written.fd, size: written.fileSize, mode });
      else written.close().catch((err) => this.deps.logger.warn({ err, id }, 'closing a spool file failed'));
    } catch (e) {
      await written?.close().catch(() => undefined);
      // the write error is the one to report
      for (const f of [tmpFile, written?.file, committed]) if (f) unlinkQuietly(f);
      // A full disk (or quota) is "452 4.3.1 insufficient system storage" (RFC 5321 §4.2.3, RFC 3463 X.3.1): the client keeps the message and retries.
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT') throw new SmarthostError('SH_SPOOL_WRITE', `insufficient system storage: the spool's file system is full (${code})`, { cause: e, responseCode: 452, enhanced: '4.3.1' });
      throw new SmarthostError('SH_SPOOL_WRITE', `could not write the message to the spool: ${(e as Error).message}`, { cause: e, responseCode: 451, enhanced: '4.3.0' });
    } finally {
      this.busy.delete(id);
    }
    if (!record) throw new SmarthostError('SH_INTERNAL', `message ${id}: written without its envelope`);
    this.index.set(id, { state: 'incoming', record, touched: ++this.ops });
    // before it is due: delivery must not take it before its mark is cleared (a claim's rename would
    // leave a marked file where recovery does not look for one, a move would copy the mark away)
    if (mark) this.unanswered.set(id, this.deps.clock.now());
    if (Buffer.isBuffer(content) && this.keepFresh(id, content) && options?.handOver && ownsMemory(content)) this.givable.add(id);
    this.ready.add(id);
    this.emit({ type: 'accepted', id, envelope: record.envelope, at: new Date(this.deps.clock.now()).toISOString() });
    for (const l of this.listeners) l(id);
    return id;
  }

  acknowledge(id: QueueId): void {
    if (!this.unanswered.delete(id)) return;
    if (this.passedOver) {
      this.passedOver = false;
      for (const l of this.listeners) l(id);
    }
    // An in-kernel metadata change, no fsync: it matters only while the kernel runs (acknowledge.ts).
    // On failure the message is deliverable as before (unanswered no more) and the caller answers 4xx.
    const open = this.openFiles.get(id);
    if (open) {
      fchmodSync(open.fd, QUEUE_FILE_MODE);
      open.mode = QUEUE_FILE_MODE;
      return;
    }
    const entry = this.index.get(id);
    try {
      chmodSync(this.paths.queueFile(entry?.state ?? 'incoming', id), QUEUE_FILE_MODE);
    } catch (e) {
      // moved by another process (the CLI): its new file was written without the mark
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }

  private keepFresh(id: QueueId, content: Buffer): boolean {
    const cost = Math.max(content.length, content.buffer.byteLength);
    if (this.freshBytes + cost > FRESH_CONTENT_LIMIT) return false;
    this.fresh.set(id, content);
    this.freshBytes += cost;
    return true;
  }

  private forgetFresh(id: QueueId): void {
    const content = this.fresh.get(id);
    this.givable.delete(id);
    if (!content) return;
    this.fresh.delete(id);
    this.freshBytes -= Math.max(content.length, content.buffer.byteLength);
  }

  async quarantine(content: Buffer, reason: string, originalName: string): Promise<void> {
    const name = await writeBadmail(this.paths, this.syncer, { name: originalName, content, reason });
    this.deps.logger.warn({ file: originalName, badmail: name, reason }, 'file moved to badmail');
  }

  async toBadmail(record: QueueRecord, recipients: string[], bdrText: string): Promise<string> {
    const entry = this.index.get(record.id);
    const state = entry?.state ?? 'active';
    return writeBadmail(this.paths, this.syncer, {
      name: record.id,
      content: { file: this.paths.queueFile(state, record.id), size: record.envelope.size },
      envelope: { mailFrom: record.envelope.mailFrom, recipients },
      reason: bdrText,
    });
  }

  async rescan(): Promise<void> {
    const startedAt = this.ops;
    const seen = new Map<QueueId, QueueFolder>();
    for (const state of QUEUE_STATES) {
      let names: string[] = [];
      try {
        names = await readdir(this.paths.folder(state));
      } catch {
        continue;
      }
      for (const n of names) {
        if (n.endsWith(QUEUE_FILE_EXT)) seen.set(n.slice(0, -QUEUE_FILE_EXT.length), state);
        else if (n.endsWith(QUEUE_FILE_EXT + LOCKED_SUFFIX) && this.deps.recover !== false) await this.unlockIfStale(state, n);
      }
    }
    for (const [id, entry] of this.index) {
      if (entry.touched > startedAt || this.busy.has(id)) continue;
      if (!seen.has(id)) {
        this.index.delete(id);
        this.forgetFresh(id);
        this.closeFile(id);
      }
    }
    for (const [id, state] of seen) {
      const entry = this.index.get(id);
      if (this.removals.has(id) || this.beingRemoved.has(id) || this.busy.has(id) || (entry && (entry.touched > startedAt || entry.state === state))) continue;
      // moved by another process: its file was written anew, the one kept open is not it any more
      this.closeFile(id);
      try {
        const { record } = await readQueueFile(this.paths.queueFile(state, id), id);
        if ((this.index.get(id)?.touched ?? 0) > startedAt) continue;
        const entry: IndexEntry = { state, record, touched: startedAt };
        this.index.set(id, entry);
        this.note(entry);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.deps.logger.error({ err: e, id }, 'unreadable queue file');
      }
    }
  }

  /**
   * A lock left by a process that died mid-move (a minute old) is undone by the relay: removed when
   * the move was committed (the message's file is in a folder), else renamed back.
   */
  private async unlockIfStale(state: QueueFolder, name: string): Promise<void> {
    const file = `${this.paths.folder(state)}/${name}`;
    const id = name.slice(0, -(QUEUE_FILE_EXT + LOCKED_SUFFIX).length);
    try {
      const st = await stat(file);
      if (Date.now() - st.ctimeMs < STALE_LOCK_MS) return;
      const moved = await Promise.all(QUEUE_STATES.map((s) => stat(this.paths.queueFile(s, id)).then(() => true, () => false)));
      if (moved.some(Boolean)) await unlinkIfExists(file);
      else await rename(file, file.slice(0, -LOCKED_SUFFIX.length));
      this.deps.logger.warn({ file }, 'stale lock on a queued message undone');
    } catch {
      /* gone meanwhile: its owner finished */
    }
  }

  async list(filter: ListFilter = {}): Promise<QueueEntry[]> {
    await this.rescan();
    const needle = filter.address?.toLowerCase();
    return [...this.index.values()]
      .filter((e) => !filter.state || e.state === filter.state)
      .filter((e) => !needle || [e.record.envelope.mailFrom, ...e.record.envelope.recipients].some((a) => a.toLowerCase().includes(needle)))
      .sort((a, b) => (a.record.id < b.record.id ? -1 : 1))
      .map((e) => ({ state: e.state, record: e.record }));
  }

  /**
   * The full queue id for an id or a unique start of one (CLI: `queue show 20261125T1745`).
   * Throws SH_QUEUE_NOT_FOUND when nothing matches, SH_USAGE listing the matches when several do.
   */
  async resolveId(prefix: string): Promise<QueueId> {
    if (!this.index.has(prefix)) await this.rescan();
    const id = resolveIdPrefix(prefix, this.index.keys());
    if (!id) throw new SmarthostError('SH_QUEUE_NOT_FOUND', `no message with queue id ${prefix}`);
    return id;
  }

  private async find(id: QueueId): Promise<IndexEntry> {
    if (!this.index.has(id)) await this.rescan();
    const entry = this.index.get(id);
    if (!entry) throw new SmarthostError('SH_QUEUE_NOT_FOUND', `no message with queue id ${id}`);
    return entry;
  }

  async show(id: QueueId): Promise<MessageDetails> {
    const entry = await this.find(id);
    let headerPreview = '';
    const fh = await open(this.paths.queueFile(entry.state, id), 'r').catch(() => undefined);
    if (fh) {
      try {
        const buf = Buffer.alloc(Math.min(65536, entry.record.envelope.size));
        const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
        const text = buf.subarray(0, bytesRead).toString('utf8');
        const end = text.search(/\r?\n\r?\n/);
        headerPreview = end >= 0 ? text.slice(0, end) : text;
      } finally {
        await fh.close();
      }
    }
    return { state: entry.state, record: entry.record, headerPreview };
  }

  async readMessage(id: QueueId): Promise<Buffer> {
    const entry = await this.find(id);
    return (await readFile(this.paths.queueFile(entry.state, id))).subarray(0, entry.record.envelope.size);
  }

  openMessage(id: QueueId): Readable {
    const entry = this.index.get(id);
    if (!entry) throw new SmarthostError('SH_QUEUE_NOT_FOUND', `no message with queue id ${id}`);
    const content = this.fresh.get(id);
    // lent to a stream from now on: never given away under it
    this.givable.delete(id);
    if (content) return oneChunk(content);
    const size = entry.record.envelope.size;
    return size === 0 ? oneChunk(Buffer.alloc(0)) : createReadStream(this.paths.queueFile(entry.state, id), { start: 0, end: size - 1 });
  }

  locateMessage(id: QueueId, take = false): MessageLocation {
    const entry = this.index.get(id);
    if (!entry) throw new SmarthostError('SH_QUEUE_NOT_FOUND', `no message with queue id ${id}`);
    const content = this.fresh.get(id);
    if (!content) return { file: this.paths.queueFile(entry.state, id), size: entry.record.envelope.size };
    if (take && this.givable.has(id)) {
      // Given away whole: the next locate (a retry, another route's part) reads the file, which holds the same bytes.
      this.forgetFresh(id);
      return { buffer: content, owned: true };
    }
    this.givable.delete(id);
    return { buffer: content };
  }

  handoffJournal(id: QueueId): HandoffJournal {
    // one file for both kinds of line: "ID" (settled, markDelivered) and "ID<TAB>recipient" (taken upstream)
    return { file: path.join(this.paths.root, DELIVERED_LOG), prefix: `${id}\t` };
  }

  /** Runs fn with the id marked busy; refuses when another operation has it. */
  private async exclusive<T>(id: QueueId, fn: () => Promise<T>): Promise<T> {
    if (this.busy.has(id) || this.unanswered.has(id)) throw new SmarthostError('SH_INTERNAL', `message ${id} is being worked on; try again in a moment`);
    this.busy.add(id);
    try {
      return await fn();
    } finally {
      this.busy.delete(id);
    }
  }

  /**
   * Takes the queue file for this process: renamed to <id>.eml.locked in its folder, which no other
   * process reads (the relay's claim of the same message then fails harmlessly). Throws when the file
   * is gone: the relay is delivering or moving that message right now.
   */
  private async lock(state: QueueFolder, id: QueueId): Promise<string> {
    const locked = this.paths.queueFile(state, id) + LOCKED_SUFFIX;
    try {
      renameSync(this.paths.queueFile(state, id), locked);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        this.index.delete(id);
        throw new SmarthostError('SH_INTERNAL', `message ${id} is being delivered or moved right now; try again in a moment`);
      }
      throw e;
    }
    return locked;
  }

  /**
   * Moves a message to `to` with its updated record: lock its file, write the same message with the
   * new record into tmp/ (fsynced), rename that into `to` (the commit), fsync `to`, then remove the
   * locked file. The file is never patched in place, so a crash leaves either the old file (locked:
   * recovery unlocks it) or the new one (recovery removes the leftover lock).
   */
  private async move(entry: IndexEntry, to: QueueFolder): Promise<void> {
    const id = entry.record.id;
    const from = entry.state;
    const locked = await this.lock(from, id);
    try {
      await rewriteQueueFile(locked, this.paths.queueFile(to, id), this.paths.folder('tmp'), entry.record);
    } catch (e) {
      await rename(locked, this.paths.queueFile(from, id)).catch(() => undefined);
      throw e;
    }
    await this.syncer.sync(this.paths.folder(to));
    // Closed before the unlink, not after: closing the last reference to an unlinked file frees its
    // blocks inside close(2), on the event loop (0.45 ms per 100 KB message in a CPU profile while
    // the upstream was down and every message was deferred); the unlink runs in the thread pool.
    this.closeFile(id);
    await unlinkIfExists(locked).catch((err) => this.deps.logger.warn({ err, id, file: locked }, 'could not remove a moved message\'s old file (recovery will)'));
    this.forgetFresh(id);
    entry.state = to;
    entry.touched = ++this.ops;
    this.note(entry);
  }

  async retry(id: QueueId): Promise<void> {
    const entry = await this.find(id);
    if (entry.state === 'active') return;
    await this.exclusive(id, async () => {
      entry.record.nextAttemptAt = 0;
      entry.record.holdReason = undefined;
      await this.move(entry, 'incoming');
    });
    this.stateEvent(id, 'queued', 'retry requested');
    for (const l of this.listeners) l(id);
  }

  async flush(): Promise<number> {
    await this.rescan();
    const ids = [...this.index.values()].filter((e) => e.state === 'deferred').map((e) => e.record.id);
    let n = 0;
    for (const id of ids) {
      try {
        await this.retry(id);
        n++;
      } catch (e) {
        this.deps.logger.warn({ err: e, id }, 'flush: message skipped');
      }
    }
    return n;
  }

  async hold(id: QueueId, reason = 'held by an administrator'): Promise<void> {
    const entry = await this.find(id);
    if (entry.state === 'active') throw new SmarthostError('SH_INTERNAL', `message ${id} is being delivered right now; try again in a moment`);
    await this.exclusive(id, async () => {
      entry.record.holdReason = reason;
      await this.move(entry, 'hold');
    });
    this.stateEvent(id, 'parked', reason);
  }

  async release(id: QueueId): Promise<void> {
    const entry = await this.find(id);
    if (entry.state !== 'hold') return;
    await this.retry(id);
  }

  async delete(id: QueueId, reason = 'deleted by an administrator'): Promise<void> {
    const entry = await this.find(id);
    if (entry.state === 'active') throw new SmarthostError('SH_INTERNAL', `message ${id} is being delivered right now; try again in a moment`);
    await this.exclusive(id, async () => {
      const locked = await this.lock(entry.state, id);
      this.closeFile(id); // before the unlink: see move()
      await unlinkIfExists(locked);
      await this.syncer.sync(this.paths.folder(entry.state));
      this.index.delete(id);
      this.forgetFresh(id);
    });
    this.deps.logger.info({ id, reason, from: entry.record.envelope.mailFrom, to: pendingRecipients(entry.record) }, 'message deleted from the queue');
    this.stateEvent(id, 'deleted', reason);
  }

  /** Remembers where a message now is, for due(): ready in incoming/, or the earliest deferred time. */
  private note(entry: IndexEntry): void {
    if (entry.state === 'incoming') this.ready.add(entry.record.id);
    else if (entry.state === 'deferred' && entry.record.nextAttemptAt < this.nextDeferredAt) this.nextDeferredAt = entry.record.nextAttemptAt;
  }

  /**
   * Cheap with a large queue: messages in incoming/ wait in arrival order in `ready`; deferred/ is
   * scanned only once its earliest nextAttemptAt has come, and what is due then joins `ready`.
   * Returns up to `limit` messages without removing them (a claim does that).
   */
  due(now: number, limit: number): QueueRecord[] {
    if (now >= this.nextDeferredAt) {
      const dueNow: QueueRecord[] = [];
      let next = Infinity;
      for (const e of this.index.values()) {
        if (e.state !== 'deferred') continue;
        if (e.record.nextAttemptAt <= now) dueNow.push(e.record);
        else if (e.record.nextAttemptAt < next) next = e.record.nextAttemptAt;
      }
      dueNow.sort((a, b) => a.nextAttemptAt - b.nextAttemptAt || (a.id < b.id ? -1 : 1));
      for (const r of dueNow) this.ready.add(r.id);
      this.nextDeferredAt = next;
    }
    const out: QueueRecord[] = [];
    for (const id of this.ready) {
      if (out.length >= limit) break;
      const e = this.index.get(id);
      const waiting = e && (e.state === 'incoming' || (e.state === 'deferred' && e.record.nextAttemptAt <= now));
      if (!waiting || this.busy.has(id)) {
        this.ready.delete(id);
        continue;
      }
      const since = this.unanswered.get(id);
      if (since !== undefined) {
        if (now - since < UNANSWERED_GRACE_MS) {
          this.passedOver = true;
          continue;
        }
        this.deps.logger.warn({ id }, 'a message was not acknowledged to its client in time; delivered anyway (its client may send it again)');
        try {
          this.acknowledge(id);
        } catch (err) {
          this.deps.logger.warn({ err, id }, 'could not clear the unacknowledged mark of a queue file');
        }
      }
      out.push(e.record);
    }
    return out;
  }

  nextDue(): number | undefined {
    if (this.ready.size) return 0;
    return Number.isFinite(this.nextDeferredAt) ? this.nextDeferredAt : undefined;
  }

  async claim(id: QueueId): Promise<QueueRecord | undefined> {
    const entry = this.index.get(id);
    if (!entry || this.busy.has(id) || this.unanswered.has(id) || (entry.state !== 'incoming' && entry.state !== 'deferred')) return undefined;
    this.busy.add(id);
    try {
      // no fsync: after a crash the message is either where it was or in active/, both due again
      renameSync(this.paths.queueFile(entry.state, id), this.paths.queueFile('active', id));
      entry.state = 'active';
      entry.touched = ++this.ops;
      return entry.record;
    } catch (e) {
      this.busy.delete(id);
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        this.index.delete(id);
        this.forgetFresh(id);
        this.closeFile(id);
        return undefined;
      }
      throw e;
    }
  }

  async settle(record: QueueRecord, to: QueueFolder | 'done'): Promise<void> {
    const entry = this.index.get(record.id) ?? { state: 'active' as QueueFolder, record, touched: 0 };
    entry.record = record;
    this.forgetFresh(record.id);
    try {
      if (to === 'done') {
        // No folder fsync (Postfix does none either): if the removal is lost in a crash, the message
        // comes back from active/ as a possible duplicate and is delivered again: at least once.
        this.markDelivered(record.id);
        this.removeLater(record.id, this.paths.queueFile(entry.state, record.id));
        this.index.delete(record.id);
      } else {
        await this.move(entry, to);
        this.index.set(record.id, entry);
      }
    } finally {
      this.busy.delete(record.id);
    }
    if (to === 'incoming') for (const l of this.listeners) l(record.id);
  }

  /**
   * Notes a settled message's id in delivered.log at once, before its file leaves in the next
   * removal batch: a crash in between (SIGKILL, a bug) then costs no second delivery, because
   * recovery removes from active/ what the log names instead of putting it back in line. One
   * write(2) without fsync: what a killed process wrote stays in the page cache; after a power
   * loss the line may be gone and the message is delivered again, as before (at least once). The
   * log is emptied when no removal is pending (flushRemovals) and at start (recovery).
   */
  private markDelivered(id: QueueId): void {
    try {
      this.deliveredFd ??= openSync(path.join(this.paths.root, DELIVERED_LOG), 'a', 0o600);
      const line = `${id}\n`;
      writeSync(this.deliveredFd, line);
      this.deliveredBytes += line.length;
    } catch (err) {
      this.deps.logger.warn({ err, id }, 'could not note a delivered message in delivered.log (a crash now would deliver it again)');
    }
  }

  /** Closes a queue file kept open (the message is moved, deleted or gone). */
  private closeFile(id: QueueId): void {
    const open = this.openFiles.get(id);
    if (!open) return;
    this.openFiles.delete(id);
    closeQuietly(open.fd);
  }

  /**
   * A delivered message's file leaves its folder in a batch, every REMOVAL_DELAY_MS or REMOVAL_BATCH
   * messages: renamed into tmp/ as a spare when it is still open (SpareFiles: the next message is
   * written over it, no file deleted or created), else deleted. Both run in the thread pool (they wait
   * on the journal behind the fsyncs: ~130 µs blocked per message when synchronous), and a batch wakes
   * the pool once instead of per message. Meanwhile rescan() ignores them; a crash before the batch
   * brings them back from active/ as possible duplicates, as a lost removal always could (no folder
   * fsync).
   */
  private removeLater(id: QueueId, file: string): void {
    this.removals.set(id, file);
    if (this.removals.size >= REMOVAL_BATCH) void this.flushRemovals();
    else this.removalTimer ??= setTimeout(() => void this.flushRemovals(), REMOVAL_DELAY_MS).unref();
  }

  private flushRemovals(): Promise<void> {
    clearTimeout(this.removalTimer);
    this.removalTimer = undefined;
    const batch = [...this.removals];
    if (batch.length === 0) return this.removing;
    this.removals.clear();
    for (const [id] of batch) this.beingRemoved.add(id);
    const run = Promise.all(batch.map(async ([id, file]) => {
      let open = this.openFiles.get(id);
      this.openFiles.delete(id);
      // only the very file this descriptor wrote: another process (the CLI) may have replaced it
      if (open && !sameFile(open.fd, file)) {
        closeQuietly(open.fd);
        open = undefined;
      }
      try {
        if (open) {
          const spare = this.spares.newName();
          await rename(file, spare);
          // already in the mode the next message will want (writeOpenNow changes it only if not); if
          // that fails the spare keeps its mode, which writeOpenNow then sets on the event loop
          if (open.mode !== this.spares.mode) {
            const mode = this.spares.mode;
            await fchmodAsync(open.fd, mode).then(() => { open!.mode = mode; }, () => undefined);
          }
          if (this.spares.giveBack({ fd: open.fd, file: spare, size: open.size, mode: open.mode })) return;
          closeQuietly(open.fd);
          await unlinkIfExists(spare);
        } else await unlinkIfExists(file);
      } catch (err) {
        if (open) closeQuietly(open.fd);
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.deps.logger.error({ err, id, file }, 'could not remove a delivered message from the spool');
      }
    })).then(() => {
      for (const [id] of batch) this.beingRemoved.delete(id);
      // Every id in the log has left active/: the log can start again (kept small).
      if (this.deliveredFd !== undefined && this.deliveredBytes > 256 * 1024 && this.removals.size === 0 && this.beingRemoved.size === 0) {
        try {
          ftruncateSync(this.deliveredFd, 0);
          this.deliveredBytes = 0;
        } catch { /* grows a little more; emptied at the next start */ }
      }
    });
    this.removing = this.removing.then(() => run);
    return this.removing;
  }

  /**
   * Health checks come from several places at once (a load balancer's every 300 ms, the console,
   * `smarthost status`): callers that arrive while a probe runs share it. Two probes of the same
   * file name at once would rename and remove each other's file and report a healthy spool as down.
   */
  probe(): Promise<void> {
    this.probing ??= probeWrite(this.paths, `.health-probe-${process.pid}`, 'incoming').finally(() => {
      this.probing = undefined;
    });
    return this.probing;
  }
  private probing: Promise<void> | undefined;

  async close(): Promise<void> {
    await this.flushRemovals();
    if (this.deliveredFd !== undefined) closeQuietly(this.deliveredFd);
    this.deliveredFd = undefined;
    await this.spares.close();
    for (const id of [...this.openFiles.keys()]) this.closeFile(id);
    this.listeners = [];
    // `unanswered` is kept: an acknowledge() still on its way must clear its file's mark (by name now)
    this.fresh.clear();
    this.givable.clear();
    this.freshBytes = 0;
    await this.syncer.close();
  }
}

/** The descriptor is open on the file now at `file` (same device and inode). */
function sameFile(fd: number, file: string): boolean {
  try {
    const a = fstatSync(fd);
    const b = statSync(file);
    return a.ino === b.ino && a.dev === b.dev;
  } catch {
    return false;
  }
}

/** A stream of one in-memory message, read like its queue file (a byte stream, not object mode). */
/** The Buffer is the whole of its memory (not a slice of a pool or of a larger read), so that memory can be transferred to a thread. */
function ownsMemory(content: Buffer): boolean {
  return content.byteOffset === 0 && content.byteLength === content.buffer.byteLength && !(content.buffer instanceof SharedArrayBuffer);
}

function oneChunk(content: Buffer): Readable {
  const stream = new Readable({ read() {} });
  stream.push(content);
  stream.push(null);
  return stream;
}
