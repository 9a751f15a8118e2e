/**
 * The SMTP transport (smtp.ts) run in a thread of its own, so that a busy relay uses two CPU cores:
 * the main thread serves the SMTP listeners and the spool, this thread speaks SMTP to the upstream
 * (nodemailer's commands and replies, line-end normalisation, dot-stuffing, socket writes). On the
 * bench machine that work was a third of the main thread's CPU per 1 KB message, and more at 100 KB
 * (docs/performance.md).
 *
 * To the delivery manager it is a Transport like any other. A message crosses as its bytes when the
 * spool still holds them in memory (copied once and transferred, not cloned again), otherwise as the
 * name of its spool file, which the thread only reads. Outcomes come back as plain objects.
 *
 * An idle thread is stopped (its pooled upstream connections closed with QUIT) and the next send
 * starts a new one, about 0.1 s later than it would have gone: an office's relay is idle most of the
 * day, and a thread is a second V8 heap, about 30 MB (docs/performance.md "Memory"). The thread
 * started to check the settings stops one second after it has said they are fine, unless sends came.
 *
 * If the thread dies (a native crash, out of memory), every send in flight is reported as delayed
 * and possibly delivered (the upstream may have taken the message before the thread died), so the
 * queue retries it and marks it as a possible duplicate: at least once, never lost. The next send
 * starts a new thread.
 */
import type { Worker } from 'node:worker_threads';
import pino from 'pino';
import type { Logger } from '../core/logger.ts';
import { SmarthostError, sanitizeText, type ErrorCode } from '../core/errors.ts';
import type { OutboundMessage, Outcome, Transport } from '../core/types.ts';
import type { UpstreamConfig } from '../config/sections/upstreams.ts';
import type { ThreadReply, ThreadRequest, ThreadSetup, WireMessage } from './smtp-thread-worker.ts';
import { WorkerCalls } from '../core/worker-calls.ts';
import { startWorker } from '../core/embedded.ts';

export interface ThreadedSmtpOptions {
  logger: Logger;
  /** Our name for EHLO when the upstream has no heloName. */
  hostname: string;
  /** Folder a relative `ca` path is resolved against (the config file's). */
  configDir?: string;
  /** Stop the thread after this long without a send in flight (default 60 s; tests). */
  idleStopMs?: number;
}

/** How long a thread without sends is kept: a burst's messages share one thread and its upstream connections. */
const IDLE_STOP_MS = 60_000;
/** The thread started at creation to check the settings, when no send comes meanwhile. */
const IDLE_STOP_AFTER_START_MS = 1_000;

type Request = ThreadRequest extends infer R ? (R extends { seq: number } ? Omit<R, 'seq'> : never) : never;

export interface ThreadedTransport extends Transport {
  /**
   * Stops the thread now (its connections drop; sends in flight are reported as above); the next
   * send starts a fresh one. For an operator resetting a wedged upstream, and for tests.
   */
  restartThread(): Promise<void>;
  /** Whether a thread is running now (it is stopped when idle; tests). */
  threadRunning(): boolean;
}

/** Resolves once the thread's transport is built; throws the transport's own configuration error. */
export async function createThreadedSmtpTransport(upstream: UpstreamConfig, opts: ThreadedSmtpOptions): Promise<ThreadedTransport> {
  const setup: ThreadSetup = { upstream, hostname: opts.hostname, configDir: opts.configDir, logLevel: opts.logger.level };
  const calls = new WorkerCalls();
  let worker: Worker | undefined;
  let ready: Promise<Worker> | undefined;
  let closed = false;
  let idleTimer: NodeJS.Timeout | undefined;
  /** Threads stopped for being idle: their exit fails nothing (no call was theirs). */
  const retired = new WeakSet<Worker>();
  const idleStopMs = opts.idleStopMs ?? IDLE_STOP_MS;

  function stopWhenIdle(w: Worker, ms: number): void {
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => retire(w), ms);
    idleTimer.unref();
  }

  /** Stops an idle thread: from now on sends start a new one; this one closes its pool and exits. */
  function retire(w: Worker): void {
    if (worker !== w || calls.size > 0 || closed) return;
    worker = undefined;
    ready = undefined;
    retired.add(w);
    // the thread ends itself after closing its pool (QUIT); a pool that does not close in 5 s is dropped
    const force = setTimeout(() => void w.terminate(), 5_000);
    force.unref();
    w.once('exit', () => clearTimeout(force));
    w.postMessage({ seq: 0, op: 'close' } satisfies ThreadRequest);
  }

  function relayLog(line: string): void {
    try {
      const { level, msg, time: _time, ...fields } = JSON.parse(line) as { level: number; msg?: string; time?: number };
      const label = pino.levels.labels[level] as 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'trace' | undefined;
      opts.logger[label ?? 'info'](fields, msg ?? '');
    } catch {
      opts.logger.info(line.trim());
    }
  }

  // The checkout runs this file as .ts; the npm package runs it compiled to .js (dist/).
  function start(): Promise<Worker> {
    const w = startWorker(new URL(`./smtp-thread-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url), { workerData: setup });
    worker = w;
    return new Promise<Worker>((resolve, reject) => {
      w.on('message', (message: ThreadReply) => {
        if (calls.settle(w, message) || !('op' in message)) return;
        if (message.op === 'log') relayLog(message.line);
        else if (message.op === 'ready') {
          // idle threads do not keep the process alive; a pending request refs it (WorkerCalls)
          if (calls.size === 0) w.unref();
          stopWhenIdle(w, Math.min(IDLE_STOP_AFTER_START_MS, idleStopMs));
          resolve(w);
        } else if (message.op === 'failed') {
          reject(new SmarthostError((message.code ?? 'SH_CONFIG_INVALID') as ErrorCode, message.error));
          void w.terminate();
        }
      });
      const gone = (reason: string) => {
        if (retired.has(w)) return;
        if (worker === w) {
          worker = undefined;
          ready = undefined;
        }
        reject(new SmarthostError('SH_INTERNAL', reason));
        calls.failAll(reason);
      };
      w.on('error', (err) => gone(`the SMTP delivery thread of ${upstream.name} failed: ${err.message}`));
      w.on('exit', (code) => gone(`the SMTP delivery thread of ${upstream.name} stopped (exit code ${code})`));
    });
  }

  /** Posts a request to the thread (starting it if needed); `onPosted` runs once the thread has it. */
  async function call<T>(req: Request, transfer?: ArrayBuffer[], onPosted?: () => void): Promise<T> {
    if (closed) throw new SmarthostError('SH_INTERNAL', `upstream ${upstream.name}: the transport is closed`);
    ready ??= start();
    const w = await ready;
    clearTimeout(idleTimer);
    try {
      return await calls.call<T>(w, req, transfer, onPosted);
    } finally {
      if (calls.size === 0 && worker === w) stopWhenIdle(w, idleStopMs);
    }
  }

  async function toWire(message: OutboundMessage): Promise<{ wire: WireMessage; transfer: ArrayBuffer[] }> {
    const wire: WireMessage = { id: message.id, mailFrom: message.mailFrom, recipients: message.recipients, size: message.size, smtputf8: message.smtputf8, eightBit: message.eightBit, wireSafe: message.wireSafe, journal: message.journal };
    const where = message.locate?.(true) ?? { buffer: await message.read() };
    if ('file' in where) return { wire: { ...wire, file: where.file, size: where.size }, transfer: [] };
    // The spool's own Buffer when it gave it away (owned: its whole memory, no one else holds it);
    // otherwise an exact-size copy, since the Buffer may share its memory with others.
    const bytes = where.owned ? new Uint8Array(where.buffer.buffer, 0, where.buffer.length) : new Uint8Array(where.buffer);
    return { wire: { ...wire, bytes }, transfer: [bytes.buffer as ArrayBuffer] };
  }

  async function send(message: OutboundMessage): Promise<Outcome[]> {
    let posted = false;
    try {
      const { wire, transfer } = await toWire(message);
      return await call<Outcome[]>({ op: 'send', message: wire }, transfer, () => { posted = true; });
    } catch (e) {
      const at = new Date().toISOString();
      // Only a thread that had the message may have handed it to the upstream.
      return message.recipients.map((recipient) => ({
        recipient, action: 'delayed' as const, status: '4.3.0', transport: 'smtp', at,
        diagnostic: sanitizeText((e as Error).message),
        possibleDuplicate: posted || undefined,
        reason: posted ? 'the delivery thread stopped during this attempt: the upstream may have the message already' : undefined,
      }));
    }
  }

  ready = start();
  await ready;
  return {
    kind: 'smtp',
    name: upstream.name,
    send,
    verify: async () => {
      try {
        return await call<{ ok: boolean; detail: string }>({ op: 'verify' });
      } catch (e) {
        return { ok: false, detail: `${upstream.name}: ${(e as Error).message}` };
      }
    },
    threadRunning: () => worker !== undefined,
    async restartThread() {
      clearTimeout(idleTimer);
      const w = worker;
      if (w) await w.terminate();
    },
    async close() {
      if (closed) return;
      clearTimeout(idleTimer);
      const w = worker;
      try {
        if (w) await Promise.race([call({ op: 'close' }), new Promise((r) => setTimeout(r, 5000).unref())]);
      } catch {
        /* already gone */
      }
      closed = true;
      if (w) await w.terminate();
    },
  };
}
