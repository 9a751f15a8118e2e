/**
 * The history worker thread: owns the SQLite database so that its writes (batched transactions,
 * index updates, WAL checkpoints) and the console's searches never run on the relay's event loop.
 *
 * Protocol (core/worker-calls.ts): the parent posts { seq, op, args } and gets back
 * { seq, ok, value } or { seq, ok: false, error }. Requests are handled one at a time in arrival order, so a query sent
 * after a write sees it. Event batches are planned into rows here too ('writeEvents'), so the
 * parent only hands over the events. A failing request answers with its error and the worker goes
 * on; the database stays open.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { QueueEvent } from '../core/types.ts';
import type { WorkerReply } from '../core/worker-calls.ts';
import { planBatch, type BatchPlan } from './plan.ts';
import { SqliteHistoryDb } from './sqlite-db.ts';

export type WorkerRequest =
  | { seq: number; op: 'init' }
  | { seq: number; op: 'write'; plan: BatchPlan }
  | { seq: number; op: 'writeEvents'; events: QueueEvent[] }
  | { seq: number; op: 'query'; sql: string; params: unknown[] }
  | { seq: number; op: 'run'; sql: string; params: unknown[] }
  | { seq: number; op: 'close' };

const db = new SqliteHistoryDb((workerData as { file: string }).file);

function handle(req: WorkerRequest): unknown {
  switch (req.op) {
    case 'init': return db.init();
    case 'write': return db.write(req.plan);
    case 'writeEvents': return db.write(planBatch(req.events));
    case 'query': return db.query(req.sql, req.params);
    case 'run': return db.run(req.sql, req.params);
    case 'close': return db.close();
  }
}

parentPort!.on('message', (req: WorkerRequest) => {
  let reply: WorkerReply;
  try {
    reply = { seq: req.seq, ok: true, value: handle(req) };
  } catch (err) {
    const e = err as Error & { code?: string };
    reply = { seq: req.seq, ok: false, error: e.message ?? String(err), code: e.code };
  }
  parentPort!.postMessage(reply);
});
