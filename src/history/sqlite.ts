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
import { Worker } from 'node:worker_threads';
import type { QueueEvent } from '../core/types.ts';
import type { BatchPlan } from './plan.ts';
import type { HistoryBackend } from './sql.ts';
import type { WorkerReply, WorkerRequest } from './sqlite-worker.ts';

type Request = WorkerRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

export function openSqliteBackend(file: string): HistoryBackend {
  let worker: Worker | undefined;
  let opened = false;
  let nextId = 1;
  const pending = new Map<number, Pending>();

  function failAll(reason: string): void {
    const waiting = [...pending.values()];
    pending.clear();
    for (const p of waiting) p.reject(new Error(reason));
  }

  function start(): Worker {
    const w = new Worker(new URL('./sqlite-worker.ts', import.meta.url), { workerData: { file } });
    w.on('message', (reply: WorkerReply) => {
      const p = pending.get(reply.id);
      if (!p) return;
      pending.delete(reply.id);
      if (pending.size === 0) w.unref();
      if (reply.ok) p.resolve(reply.value);
      else p.reject(Object.assign(new Error(reply.error), reply.code ? { code: reply.code } : {}));
    });
    w.on('error', (err) => {
      if (worker === w) worker = undefined;
      opened = false;
      failAll(`the history worker failed: ${err.message}`);
    });
    w.on('exit', (code) => {
      if (worker === w) worker = undefined;
      opened = false;
      failAll(`the history worker stopped (exit code ${code})`);
    });
    return w;
  }

  function call<T>(req: Request): Promise<T> {
    worker ??= start();
    const id = nextId++;
    const w = worker;
    if (pending.size === 0) w.ref();
    return new Promise<T>((resolve, reject) => {
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      w.postMessage({ ...req, id });
    });
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
