/**
 * Durable file operations for the spool, with group commit.
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
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';

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
  private handles = new Map<string, Promise<FileHandle>>();
  /** Number of directory fsyncs actually issued (for tests and metrics). */
  syncCount = 0;

  /** Resolves once an fsync of `dir` that started after this call has completed. */
  sync(dir: string): Promise<void> {
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
    let handle = this.handles.get(dir);
    if (!handle) {
      handle = open(dir, 'r');
      this.handles.set(dir, handle);
    }
    try {
      await (await handle).sync();
    } catch (e) {
      // Reopen on the next round: the error may be the handle's (EBADF, a folder gone and back).
      if (this.handles.get(dir) === handle) this.handles.delete(dir);
      await handle.then((h) => h.close(), () => undefined).catch(() => undefined);
      throw e;
    }
  }

  /** Closes the folders kept open (the spool's close()). Later syncs reopen them. */
  async close(): Promise<void> {
    const open = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(open.map((h) => h.then((fh) => fh.close(), () => undefined).catch(() => undefined)));
  }
}

/** fsync of a path opened read-only (works for folders on Linux and macOS). */
export async function fsyncPath(p: string): Promise<void> {
  const fh = await open(p, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
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
  datasync(): Promise<void>;
  close(): Promise<void>;
}

/** Writes `content` (Buffer or stream, one chunk in memory at a time) to a new file and keeps it open. */
export async function writeOpen(file: string, content: Buffer | NodeJS.ReadableStream): Promise<OpenWrite> {
  // All asynchronous: under fsync load even a create or rename can wait on the journal, and the
  // event loop must keep serving SMTP sessions meanwhile.
  const handle = await open(file, 'wx', 0o640);
  try {
    let size = 0;
    let crc = 0;
    const chunks: AsyncIterable<Buffer | string> = Buffer.isBuffer(content) ? [content] as unknown as AsyncIterable<Buffer> : content as AsyncIterable<Buffer | string>;
    for await (const chunk of chunks) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      size += buf.length;
      crc = crc32(buf, crc);
      let off = 0;
      while (off < buf.length) off += (await handle.write(buf, off, buf.length - off)).bytesWritten;
    }
    return { size, crc, datasync: () => handle.datasync(), close: () => handle.close() };
  } catch (e) {
    await handle.close().catch(() => undefined);
    throw e;
  }
}

/** Replaces `file` atomically with `data` (write beside it, fsync, rename over). The caller syncs the folder. */
export async function replaceFileSynced(file: string, data: string): Promise<void> {
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    await writeFileSynced(tmp, data);
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
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
