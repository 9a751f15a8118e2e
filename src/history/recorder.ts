/**
 * The write side of history: record() buffers QueueEvents in memory and a background loop writes
 * them in batches (every batchMs, or as soon as batchSize are waiting), one transaction each.
 *
 * Guarantees: record() never throws and never waits; mail never waits for history. When the store
 * is down or full, events stay in a bounded backlog (maxBacklog) and are retried with a growing
 * pause (up to 30 s); when the backlog overflows, the oldest events are dropped and counted in
 * `missed`, and the log says so — the spool still has the mail, only its history is incomplete.
 * On recovery, the backlog is written in larger batches until it has caught up.
 */
import type { QueueEvent } from '../core/types.ts';
import type { Logger } from '../core/logger.ts';
import type { Clock } from '../core/clock.ts';
import { planBatch } from './plan.ts';
import type { HistoryBackend } from './sql.ts';
import type { HistoryHealth } from './types.ts';

export interface RecorderOptions {
  batchMs?: number;
  batchSize?: number;
  /** Events kept while the store is down before the oldest are dropped. */
  maxBacklog?: number;
  /** First pause after a failed write; doubles up to maxRetryMs. */
  retryMs?: number;
  maxRetryMs?: number;
}

export interface Recorder {
  record(event: QueueEvent): void;
  flush(): Promise<void>;
  health(): HistoryHealth;
  close(): Promise<void>;
}

export function createRecorder(backend: HistoryBackend, deps: { logger: Logger; clock: Clock }, opts: RecorderOptions = {}): Recorder {
  const batchMs = opts.batchMs ?? 200;
  const batchSize = opts.batchSize ?? 500;
  const maxBacklog = opts.maxBacklog ?? 200_000;
  const firstRetry = opts.retryMs ?? 1000;
  const maxRetry = opts.maxRetryMs ?? 30_000;
  const log = deps.logger;

  let buffer: QueueEvent[] = [];
  /** Events of the batch being written: still pending until the store has them. */
  let inFlight = 0;
  let writing: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let failing = false;
  let retryDelay = firstRetry;
  let missed = 0;
  let written = 0;
  let lastError: string | undefined;
  let lastWriteAt: number | undefined;
  let closed = false;

  function schedule(delay: number): void {
    if (timer || writing || closed) return;
    timer = setTimeout(() => {
      timer = undefined;
      void writeOnce();
    }, delay);
    timer.unref();
  }

  /** Takes one batch, bigger while catching up, and writes it; on failure puts it back in front. */
  function writeOnce(): Promise<void> {
    if (writing) return writing;
    if (buffer.length === 0) return Promise.resolve();
    const take = buffer.length > batchSize * 4 ? batchSize * 10 : batchSize;
    const batch = buffer.slice(0, take);
    buffer = buffer.slice(batch.length);
    inFlight = batch.length;
    writing = (async () => {
      try {
        await backend.init();
        await (backend.writeEvents ? backend.writeEvents(batch) : backend.write(planBatch(batch)));
        written += batch.length;
        lastWriteAt = deps.clock.now();
        if (failing) log.info({ pending: buffer.length, missed }, 'history store is writable again; catching up');
        failing = false;
        retryDelay = firstRetry;
      } catch (err) {
        buffer = batch.concat(buffer);
        lastError = err instanceof Error ? err.message : String(err);
        if (!failing) log.warn({ err: lastError, pending: buffer.length }, 'history store write failed; events are kept and retried (mail is not affected)');
        failing = true;
        trimBacklog();
      } finally {
        inFlight = 0;
        writing = undefined;
      }
      if (buffer.length > 0) schedule(failing ? nextRetry() : buffer.length >= batchSize ? 0 : batchMs);
    })();
    return writing;
  }

  function nextRetry(): number {
    const d = retryDelay;
    retryDelay = Math.min(retryDelay * 2, maxRetry);
    return d;
  }

  /** Drops the oldest events beyond maxBacklog, counting them. */
  function trimBacklog(): void {
    const excess = buffer.length - maxBacklog;
    if (excess <= 0) return;
    // Drop a little more than needed so this does not run on every record() while down.
    const drop = Math.min(buffer.length, excess + Math.ceil(maxBacklog / 10));
    buffer = buffer.slice(drop);
    missed += drop;
    log.warn({ dropped: drop, missed }, 'history backlog is full: oldest events dropped; history will miss them (the spool still has the mail)');
  }

  return {
    record(event) {
      try {
        if (closed) {
          missed++;
          return;
        }
        buffer.push(event);
        if (buffer.length > maxBacklog) trimBacklog();
        if (!failing) schedule(buffer.length >= batchSize ? 0 : batchMs);
      } catch {
        // record() must never throw into the SMTP path.
      }
    },
    async flush() {
      if (timer) {
        clearTimeout(timer);
        timer = undefined;
      }
      // Bounded: each round writes a batch or fails; stop at the first failure.
      for (let round = 0; round < 10_000 && (buffer.length > 0 || writing); round++) {
        if (writing) {
          await writing;
          continue;
        }
        await writeOnce();
        if (failing) break;
      }
      if (buffer.length > 0) schedule(failing ? retryDelay : 0);
    },
    health() {
      const pending = buffer.length + inFlight;
      const summary = failing
        ? `history store is not writable (${lastError}); ${pending} events waiting${missed ? `, ${missed} dropped` : ''}`
        : missed
          ? `history is writable; ${missed} events were dropped while it was down`
          : 'history is up to date';
      return {
        backend: backend.kind, ok: !failing, pending, missed, written, lastError,
        lastWriteAt: lastWriteAt === undefined ? undefined : new Date(lastWriteAt).toISOString(), summary,
      };
    },
    async close() {
      await this.flush();
      closed = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      if (buffer.length) log.warn({ lost: buffer.length }, 'history closed with events unwritten');
    },
  };
}
