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
 */
import type { Worker } from 'node:worker_threads';
import type { QueueEvent } from '../core/types.ts';
import type { BatchPlan } from './plan.ts';
import type { HistoryBackend } from './sql.ts';
import type { WorkerRequest } from './sqlite-worker.ts';
import { WorkerCalls } from '../core/worker-calls.ts';
import { startWorker } from '../core/embedded.ts';

type Request = WorkerRequest extends infer R ? (R extends { seq: number } ? Omit<R, 'seq'> : never) : never;

export function openSqliteBackend(file: string): HistoryBackend {
  let worker: Worker | undefined;
  let opened = false;
  const calls = new WorkerCalls();

  // The checkout runs this file as .ts; the npm package runs it compiled to .js (dist/).
  function start(): Worker {
    const w = startWorker(new URL(`./sqlite-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url), { workerData: { file } });
    w.on('message', (reply: unknown) => calls.settle(w, reply));
    const gone = (reason: string) => {
      if (worker === w) worker = undefined;
      opened = false;
      calls.failAll(reason);
    };
    w.on('error', (err) => gone(`the history worker failed: ${err.message}`));
    w.on('exit', (code) => gone(`the history worker stopped (exit code ${code})`));
    return w;
  }

  function call<T>(req: Request): Promise<T> {
    worker ??= start();
    return calls.call<T>(worker, req);
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
    async close() {
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
