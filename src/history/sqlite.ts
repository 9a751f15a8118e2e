/**
 * SQLite history backend through Node's built-in `node:sqlite`, run in a worker thread.
 *
 * node:sqlite is synchronous: a batch transaction or a search on a large history would stop the
 * relay's event loop — every SMTP session — for its whole duration. So the database lives in
 * sqlite-worker.ts and this backend only posts requests to it: writes (as raw events, planned into
 * rows in the worker) and reads alike. The main thread pays one structured clone per batch.
 *
 * The worker starts on the first request and holds the process open only while a request is
 * pending. If it dies (a native crash, out of memory), every pending request rejects with the
 * reason, and the next request starts a new one — the recorder keeps the failed batch and retries,
 * so history catches up and mail never notices.
 *
 * A worker with no request for IDLE_STOP_MS closes the database and stops: a thread is a V8 heap of
 * its own (about 10 MB), and an office's relay is idle most of the day. The next request starts a
 * new one, which opens the database again (every write and query asks for init() first).
 */
import type { Worker } from 'node:worker_threads';
import type { QueueEvent } from '../core/types.ts';
import type { BatchPlan } from './plan.ts';
import type { HistoryBackend } from './sql.ts';
import type { WorkerRequest } from './sqlite-worker.ts';
import { WorkerCalls } from '../core/worker-calls.ts';
import { startWorker } from '../core/embedded.ts';

/** A burst's batches (written every few hundred ms) share one worker; a quiet minute does not. */
const IDLE_STOP_MS = 10_000;

type Request = WorkerRequest extends infer R ? (R extends { seq: number } ? Omit<R, 'seq'> : never) : never;

export function openSqliteBackend(file: string, opts: { idleStopMs?: number } = {}): HistoryBackend & { running(): boolean } {
  let worker: Worker | undefined;
  let opened = false;
  const calls = new WorkerCalls();
  const idleStopMs = opts.idleStopMs ?? IDLE_STOP_MS;
  let idleTimer: NodeJS.Timeout | undefined;
  /** Workers stopped for being idle: their exit fails nothing (no request was theirs). */
  const retired = new WeakSet<Worker>();

  /** Closes the database of an idle worker and ends it; requests from now on start a new one. */
  function retire(w: Worker): void {
    if (worker !== w || calls.size > 0) return;
    worker = undefined;
    opened = false;
    retired.add(w);
    const force = setTimeout(() => void w.terminate(), 5_000);
    force.unref();
    // seq 0 is never a WorkerCalls request: its answer is only this worker's cue to go
    w.on('message', (reply: { seq?: number }) => {
      if (reply?.seq === 0) void w.terminate();
    });
    w.once('exit', () => clearTimeout(force));
    w.postMessage({ seq: 0, op: 'close' } satisfies WorkerRequest);
  }

  // The checkout runs this file as .ts; the npm package runs it compiled to .js (dist/).
  function start(): Worker {
    const w = startWorker(new URL(`./sqlite-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url), { workerData: { file } });
    w.on('message', (reply: unknown) => calls.settle(w, reply));
    const gone = (reason: string) => {
      if (retired.has(w)) return;
      if (worker === w) worker = undefined;
      opened = false;
      calls.failAll(reason);
    };
    w.on('error', (err) => gone(`the history worker failed: ${err.message}`));
    w.on('exit', (code) => gone(`the history worker stopped (exit code ${code})`));
    return w;
  }

  async function call<T>(req: Request): Promise<T> {
    const w = (worker ??= start());
    clearTimeout(idleTimer);
    try {
      return await calls.call<T>(w, req);
    } finally {
      if (calls.size === 0 && worker === w) {
        idleTimer = setTimeout(() => retire(w), idleStopMs);
        idleTimer.unref();
      }
    }
  }

  return {
    kind: 'sqlite',
    async init() {
      if (opened && worker) return;
      await call<void>({ op: 'init' });
      opened = true;
    },
    write: (plan: BatchPlan) => call<void>({ op: 'write', plan }),
    writeEvents: (events: readonly QueueEvent[]) => call<void>({ op: 'writeEvents', events: events as QueueEvent[] }),
    query: (sql, params = []) => call<Record<string, unknown>[]>({ op: 'query', sql, params }),
    run: (sql, params = []) => call<number>({ op: 'run', sql, params }),
    /** Whether a worker is running now (it stops when idle; tests). */
    running: () => worker !== undefined,
    async close() {
      clearTimeout(idleTimer);
      const w = worker;
      if (!w) return;
      try {
        await call<void>({ op: 'close' });
      } finally {
        worker = undefined;
        opened = false;
        await w.terminate();
      }
    },
  };
}
