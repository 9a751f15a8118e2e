/**
 * Request and reply over a worker thread, for the parts that keep blocking or CPU-heavy work off
 * the event loop (the SQLite history, the SMTP delivery thread). The parent posts `{ ...request,
 * seq }`; the worker answers `{ seq, ok: true, value }` or `{ seq, ok: false, error, code? }`.
 *
 * The worker holds the process open only while a reply is due (ref while calls are pending, unref
 * when none is), so an idle thread never keeps a stopping relay alive. When the worker dies, its
 * owner calls failAll(): every call still waiting rejects with the reason instead of hanging.
 */
import type { Transferable, Worker } from 'node:worker_threads';

export type WorkerReply = { seq: number; ok: true; value?: unknown } | { seq: number; ok: false; error: string; code?: string };

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

function isReply(message: unknown): message is WorkerReply {
  return typeof message === 'object' && message !== null && 'seq' in message && 'ok' in message;
}

export class WorkerCalls {
  private pending = new Map<number, Pending>();
  private nextSeq = 1;

  /** Posts `request` to `worker`; `onPosted` runs once the worker has it (it may act on it from then on). */
  call<T>(worker: Worker, request: object, transfer?: readonly Transferable[], onPosted?: () => void): Promise<T> {
    const seq = this.nextSeq++;
    if (this.pending.size === 0) worker.ref();
    return new Promise<T>((resolve, reject) => {
      this.pending.set(seq, { resolve: resolve as (v: unknown) => void, reject });
      try {
        worker.postMessage({ ...request, seq }, transfer);
      } catch (e) {
        // not sent (a value that cannot be cloned): nothing will answer it
        this.pending.delete(seq);
        if (this.pending.size === 0) worker.unref();
        reject(e as Error);
        return;
      }
      onPosted?.();
    });
  }

  /** Settles the call `message` answers; false when it is not a reply (the worker's own messages). */
  settle(worker: Worker, message: unknown): boolean {
    if (!isReply(message)) return false;
    const p = this.pending.get(message.seq);
    if (!p) return true;
    this.pending.delete(message.seq);
    if (this.pending.size === 0) worker.unref();
    if (message.ok) p.resolve(message.value);
    else p.reject(Object.assign(new Error(message.error), message.code ? { code: message.code } : {}));
    return true;
  }

  /** Rejects every call still waiting (the worker failed or stopped). */
  failAll(reason: string): void {
    const waiting = [...this.pending.values()];
    this.pending.clear();
    for (const p of waiting) p.reject(new Error(reason));
  }

  /** Calls waiting for their reply. */
  get size(): number {
    return this.pending.size;
  }
}
