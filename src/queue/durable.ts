/**
 * Durable file operations for the spool, with group commit.
 *
 * Creates, writes, renames, unlinks and closes are synchronous calls; only the syncs (which wait for
 * the disk) go to libuv's thread pool. Measured on the bench machine (2 vCPU VM, ext4): a
 * create + write + rename of a 1 KB file costs about 48 µs of CPU as three synchronous calls and
 * about 205 µs through the thread pool (each hand-off wakes a pool thread, then the event loop), with
 * no parallelism won, since the kernel does these in microseconds. Postfix's cleanup makes the same
 * calls synchronously. A message's 250 then waits for one thread-pool round (its file syncs and the
 * folder's group-committed fsync, side by side) instead of four.
 *
 * A file is durable once its data is fsynced AND the directory entry naming it is fsynced. The
 * per-file fsyncs run in parallel in libuv's thread pool; the directory fsync is shared: while one
 * fsync of a folder is running, every request that arrives waits for the NEXT one, which then covers
 * all of them. Under load, one directory fsync commits many messages; with a single client it costs
 * the same as an unbatched fsync. A request is never satisfied by an fsync that started before it
 * (its rename might not be included).
 *
 * On failure the error is passed to every waiter of that round; nothing is retried silently.
 */
import { close as closeFd, closeSync, constants as fsConstants, fchmodSync, fdatasync, fsync, ftruncateSync, open as openFd, openSync, unlinkSync, writeSync, writevSync } from 'node:fs';
import { copyFile, open, unlink, type FileHandle } from 'node:fs/promises';
import { isAscii } from 'node:buffer';
import { crc32 } from 'node:zlib';
import { QUEUE_FILE_MODE } from './acknowledge.ts';

interface Round {
  promise: Promise<void>;
  started: boolean;
}

/**
 * Group-committed directory fsyncs, one queue of rounds per folder. Each folder stays open once
 * synced (a handful of spool folders), so a round costs one fsync instead of open + fsync + close:
 * two thread-pool round trips less on every 250. A folder whose fsync fails is reopened next time.
 * The spool's folders are never replaced while it runs (an open handle would sync the old one).
 */
export class DirectorySyncer {
  private running = new Map<string, Promise<void>>();
  private next = new Map<string, Round>();
  private handles = new Map<string, number>();
  /** Number of directory fsyncs actually issued (for tests and metrics). */
  syncCount = 0;

  /**
   * Windows has no directory fsync: FlushFileBuffers on a folder handle fails (EPERM from Node).
   * There a rename or create is NTFS metadata, written through its journal in order, and the
   * spool's FlushFileBuffers (fsync) of each file after its rename commits the file's pending
   * metadata (docs/queue.md, "On Windows"). Node's rename is MoveFileExW(MOVEFILE_REPLACE_EXISTING)
   * without MOVEFILE_WRITE_THROUGH (libuv src/win/fs.c fs__rename).
   */
  private readonly platform: NodeJS.Platform;
  constructor(platform: NodeJS.Platform = process.platform) {
    this.platform = platform;
  }

  /** Resolves once an fsync of `dir` that started after this call has completed. */
  sync(dir: string): Promise<void> {
    if (this.platform === 'win32') return Promise.resolve();
    const pending = this.next.get(dir);
    if (pending && !pending.started) return pending.promise;
    const before = this.running.get(dir) ?? Promise.resolve();
    const round: Round = { started: false, promise: Promise.resolve() };
    round.promise = before.catch(() => undefined).then(async () => {
      round.started = true;
      if (this.next.get(dir) === round) this.next.delete(dir);
      this.running.set(dir, round.promise);
      try {
        await this.fsyncOpen(dir);
        this.syncCount++;
      } finally {
        if (this.running.get(dir) === round.promise) this.running.delete(dir);
      }
    });
    this.next.set(dir, round);
    return round.promise;
  }

  private async fsyncOpen(dir: string): Promise<void> {
    let fd = this.handles.get(dir);
    if (fd === undefined) {
      fd = openSync(dir, 'r');
      this.handles.set(dir, fd);
    }
    try {
      await syncFd(fd, false);
    } catch (e) {
      // Reopen on the next round: the error may be the handle's (EBADF, a folder gone and back).
      if (this.handles.get(dir) === fd) this.handles.delete(dir);
      closeQuietly(fd);
      throw e;
    }
  }

  /** Closes the folders kept open (the spool's close()). Later syncs reopen them. */
  async close(): Promise<void> {
    for (const fd of this.handles.values()) closeQuietly(fd);
    this.handles.clear();
  }
}

/** fdatasync (data: true) or fsync of an open descriptor, in the thread pool. */
function syncFd(fd: number, data: boolean): Promise<void> {
  return new Promise((resolve, reject) => (data ? fdatasync : fsync)(fd, (e) => (e ? reject(e) : resolve())));
}

/** Closes a descriptor, ignoring every error (already closed). */
export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    /* already closed */
  }
}

/** Writes data to a new file and fsyncs it. Fails if the file exists. */
export async function writeFileSynced(file: string, data: Buffer | string): Promise<void> {
  const fh = await open(file, 'wx', 0o640);
  try {
    await fh.writeFile(data);
    // fdatasync covers what is needed to read the data back (size, blocks) and skips timestamps
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

/** Streams `source` into a new file, fsyncs it and returns the number of octets written. */
export async function streamToFileSynced(file: string, source: NodeJS.ReadableStream): Promise<number> {
  const fh: FileHandle = await open(file, 'wx', 0o640);
  let size = 0;
  try {
    // one chunk in memory at a time: back-pressure comes from awaiting each write
    for await (const chunk of source as AsyncIterable<Buffer | string>) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      size += buf.length;
      let off = 0;
      while (off < buf.length) off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
    }
    await fh.datasync();
  } finally {
    await fh.close();
  }
  return size;
}

/** A new file written but not yet synced, still open so it can be synced after a rename. */
export interface OpenWrite {
  size: number;
  /** CRC-32 of the content (checked by recovery for messages whose sync may not have finished). */
  crc: number;
  /** Every byte is 7-bit (no BODY=8BITMIME needed upstream). */
  ascii: boolean;
  datasync(): Promise<void>;
  close(): Promise<void>;
}

/** What is known of a message once written: its size, CRC-32 and whether every octet is 7-bit. */
export interface ContentInfo {
  size: number;
  crc: number;
  ascii: boolean;
}

/** Octets written after the content (the queue file's envelope trailer), computed from the content. */
export type TrailerOf = (info: ContentInfo) => Buffer;

/**
 * Writes a stream (one chunk in memory at a time) to a new file, then `trailer` if given, and keeps
 * the file open. For messages too big to hold in memory: their writes go to the thread pool, so the
 * event loop keeps serving SMTP sessions while megabytes reach the disk. A message in memory uses
 * writeOpenNow.
 */
export async function writeOpen(file: string, content: NodeJS.ReadableStream, trailer?: TrailerOf, mode = QUEUE_FILE_MODE): Promise<OpenWrite> {
  const handle = await open(file, 'wx', mode);
  try {
    let size = 0;
    let crc = 0;
    let ascii = true;
    const writeAll = async (buf: Buffer) => {
      let off = 0;
      while (off < buf.length) off += (await handle.write(buf, off, buf.length - off)).bytesWritten;
    };
    for await (const chunk of content as AsyncIterable<Buffer | string>) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      size += buf.length;
      crc = crc32(buf, crc);
      ascii &&= isAscii(buf);
      await writeAll(buf);
    }
    if (trailer) await writeAll(trailer({ size, crc, ascii }));
    return { size, crc, ascii, datasync: () => handle.datasync(), close: () => handle.close() };
  } catch (e) {
    await handle.close().catch(() => undefined);
    throw e;
  }
}

/** Names of spare files in tmp/ start with this (recovery deletes them without counting them as lost writes). */
export const SPARE_PREFIX = 'spare-';

/** An open file in tmp/ ready to take a message: new and empty, or a delivered message's (size octets). */
export interface Spare {
  fd: number;
  file: string;
  /** Octets already in the file (0 for a new one); a shorter message truncates it. */
  size: number;
  /** Its permission bits (acknowledge.ts: a reused file must not keep a previous message's mark). */
  mode: number;
}

/**
 * Files ready in one folder (the spool's tmp/), kept open for writing, so that a message's way to its
 * 250 neither creates nor deletes a file.
 *
 * Creating and deleting a file per message are the expensive metadata calls on a busy spool: a create
 * waits for a journal handle while fsyncs keep ext4 committing (60-190 µs per create, measured in the
 * relay on the bench machine), and a delete frees the blocks, which a file system mounted with
 * `discard` (as virtual disks often are, the bench machine's too) trims during the next commit. So:
 * - a delivered message's file is given back (renamed into tmp/, still open) and its blocks take the
 *   next message: written over from the start and cut to length. Measured with the spool's calls, a
 *   write + rename + fdatasync per message: 230-300 µs and 160-210 µs of CPU through a given-back
 *   file, against 330-1,200 µs and 240-1,100 µs of CPU creating one and deleting it later (the high
 *   figures when the disk's trims are slow).
 * - new ones are created in the thread pool, sixteen at a time once half are used, only when none
 *   come back fast enough (start-up, a backlog, a burst); when none is ready at all, the caller
 *   creates its file itself.
 * Spares left by a crash are plain files in tmp/, which recovery deletes at start.
 */
export class SpareFiles {
  private ready: Spare[] = [];
  private creating = 0;
  /** Spare files being created (open in the thread pool). */
  private readonly inFlight = new Set<Promise<void>>();
  private serial = 0;
  private closed = false;
  private readonly dir: string;
  private readonly target: number;
  private readonly max: number;
  /** The permission bits new spares get: those of the next message most likely to take one (acknowledge.ts). */
  readonly mode: number;

  /** Creates up to `target` spares, refilled in bursts once half are used; keeps at most `max` (given back ones included). */
  constructor(dir: string, target = 16, max = 128, mode = QUEUE_FILE_MODE) {
    this.dir = dir;
    this.target = target;
    this.max = max;
    this.mode = mode;
  }

  /** An open spare file, or undefined when none is ready; starts making more when few are left. */
  take(): Spare | undefined {
    const spare = this.ready.pop();
    if (this.ready.length + this.creating <= this.target / 2) this.refill();
    return spare;
  }

  /** A new name in the folder, for a file given back. */
  newName(): string {
    return `${this.dir}/${SPARE_PREFIX}${process.pid}-${++this.serial}`;
  }

  /**
   * Takes back a file already renamed into the folder (under newName()), still open. False when
   * enough are kept or the spares are closed: the caller then closes and deletes it.
   */
  giveBack(spare: Spare): boolean {
    if (this.closed || this.ready.length >= this.max) return false;
    this.ready.push(spare);
    return true;
  }

  private refill(): void {
    while (!this.closed && this.ready.length + this.creating < this.target) {
      const file = this.newName();
      this.creating++;
      // tracked so that close() can wait for it: its file exists on disk before the callback runs
      const made = new Promise<void>((resolve) => {
        openFd(file, 'wx', this.mode, (err, fd) => {
          this.creating--;
          if (err) return resolve(); // the next take() tries again; a message creates its own file meanwhile
          if (this.closed) {
            closeFd(fd, () => { unlinkQuietly(file); resolve(); });
            return;
          }
          this.ready.push({ fd, file, size: 0, mode: this.mode });
          resolve();
        });
      });
      this.inFlight.add(made);
      void made.then(() => this.inFlight.delete(made));
    }
  }

  /**
   * Closes and removes the spares (the spool's close()). Resolves once spares still being created
   * when it was called are removed too: after close(), tmp/ holds none of ours.
   */
  async close(): Promise<void> {
    this.closed = true;
    for (const { fd, file } of this.ready.splice(0)) {
      closeQuietly(fd);
      unlinkQuietly(file);
    }
    await Promise.all([...this.inFlight]);
  }
}

/** An OpenWrite that knows the file it wrote (a spare's name, not the one asked for). */
export interface OpenWriteAt extends OpenWrite {
  file: string;
  /** The open descriptor (the caller may keep it instead of calling close(), to give the file back later). */
  fd: number;
  /** Octets in the file: the content and the trailer. */
  fileSize: number;
}

/**
 * writeOpen for content already in memory: written synchronously into a spare file when one is
 * ready (else into a new `file`), followed by `trailer` if given; only datasync() waits for the disk,
 * in the thread pool. The caller renames `result.file` to its place.
 */
export function writeOpenNow(file: string, content: Buffer, spares?: SpareFiles, trailer?: TrailerOf, mode = QUEUE_FILE_MODE): OpenWriteAt {
  const info: ContentInfo = { size: content.length, crc: crc32(content), ascii: isAscii(content) };
  const spare = spares?.take();
  const fd = spare ? spare.fd : openSync(file, 'wx', mode);
  const written = spare ? spare.file : file;
  const parts = trailer ? [content, trailer(info)] : [content];
  const fileSize = parts.reduce((n, b) => n + b.length, 0);
  try {
    // a reused file keeps its previous mode: set the one asked for (acknowledge.ts), before the rename
    if (spare && spare.mode !== mode) fchmodSync(fd, mode);
    writeAllSync(fd, parts);
    // a given-back file held a longer message: cut it here, before the caller's rename and fdatasync
    // (which makes the new length durable with the data)
    if (spare && spare.size > fileSize) ftruncateSync(fd, fileSize);
  } catch (e) {
    closeQuietly(fd);
    unlinkQuietly(written);
    throw e;
  }
  let closed = false;
  return {
    file: written,
    fd,
    fileSize,
    ...info,
    datasync: () => syncFd(fd, true),
    close: async () => {
      if (closed) return;
      closed = true;
      closeSync(fd);
    },
  };
}

/** Writes every buffer in order from the start of the file (one writev when the kernel takes it all, as it does for a regular file). */
function writeAllSync(fd: number, parts: Buffer[]): void {
  const total = parts.reduce((n, b) => n + b.length, 0);
  const done = writevSync(fd, parts, 0);
  if (done === total) return;
  const rest = Buffer.concat(parts).subarray(done);
  for (let off = 0; off < rest.length; ) off += writeSync(fd, rest, off, rest.length - off, done + off);
}

/**
 * Makes `target` (a new file) hold the first `prefix` octets of `source` followed by `tail`, fsynced.
 * The copy is made in the kernel (copy_file_range; a reflink where the file system has them), so a
 * 35 MB message is not read into memory. The caller renames `target` to its place.
 */
export async function copyPrefixSynced(source: string, target: string, prefix: number, tail: Buffer): Promise<void> {
  await copyFile(source, target, fsConstants.COPYFILE_EXCL);
  const fh = await open(target, 'r+');
  try {
    // copyFile copies the mode: a copy (a move, a record change) never carries the source's
    // "no 250 yet" mark (acknowledge.ts); it counts as answered, which at worst repeats a delivery
    await fh.chmod(QUEUE_FILE_MODE);
    await fh.truncate(prefix);
    let off = 0;
    while (off < tail.length) off += (await fh.write(tail, off, tail.length - off, prefix + off)).bytesWritten;
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

/** Synchronous unlink that ignores every error (gone already, or the caller's error matters more). */
export function unlinkQuietly(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    /* gone already, or the error that matters is the caller's */
  }
}


/** Unlink that ignores a file already gone. */
export async function unlinkIfExists(file: string): Promise<boolean> {
  try {
    await unlink(file);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}
