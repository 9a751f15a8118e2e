/**
 * The delivery thread of smtp-thread.ts: one SMTP transport (smtp.ts, nodemailer's pool) for one
 * upstream, driven by messages from the relay's main thread.
 *
 * Protocol (core/worker-calls.ts): the parent posts { seq, op: 'send' | 'verify' | 'close' } and
 * gets back { seq, ok: true, value } or { seq, ok: false, error }. Sends run concurrently, as they do on the
 * main thread (nodemailer's pool queues them). Log lines, already redacted here, are posted as
 * { op: 'log', line } for the parent's logger. On start the thread answers { op: 'ready' }, or
 * { op: 'failed', code, error } when the upstream's settings are refused (URL, secret, CA file).
 */
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { parentPort, workerData } from 'node:worker_threads';
import pino from 'pino';
import { REDACT_PATHS } from '../core/redact.ts';
import type { HandoffJournal, OutboundMessage, Transport } from '../core/types.ts';
import type { WorkerReply } from '../core/worker-calls.ts';
import type { UpstreamConfig } from '../config/sections/upstreams.ts';
import { markWireSafe } from './dot-stuffing.ts';
import { createSmtpTransport } from './smtp.ts';

export interface ThreadSetup {
  upstream: UpstreamConfig;
  hostname: string;
  configDir?: string;
  logLevel: string;
}

/** A message as it crosses to the thread: its bytes (transferred, not copied) or its spool file (message in the first `size` octets). */
export interface WireMessage {
  id: string;
  mailFrom: string;
  recipients: string[];
  size: number;
  smtputf8?: boolean;
  eightBit?: boolean;
  wireSafe?: boolean;
  bytes?: Uint8Array;
  file?: string;
  /** The spool's handoff journal (core/types.ts): noted here, in this thread, the moment the upstream takes the message. */
  journal?: HandoffJournal;
}

export type ThreadRequest =
  | { seq: number; op: 'send'; message: WireMessage }
  | { seq: number; op: 'verify' }
  | { seq: number; op: 'close' };

export type ThreadReply =
  | WorkerReply
  | { op: 'log'; line: string }
  | { op: 'ready' }
  | { op: 'failed'; code?: string; error: string };

const port = parentPort!;
const setup = workerData as ThreadSetup;
const post = (reply: ThreadReply, transfer?: ArrayBuffer[]) => port.postMessage(reply, transfer);

const logger = pino(
  { level: setup.logLevel, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, base: undefined },
  { write: (line: string) => post({ op: 'log', line }) },
);

function fromWire(m: WireMessage): OutboundMessage {
  const buffer = m.bytes ? Buffer.from(m.bytes.buffer, m.bytes.byteOffset, m.bytes.byteLength) : undefined;
  return {
    id: m.id,
    mailFrom: m.mailFrom,
    recipients: m.recipients,
    size: m.size,
    smtputf8: m.smtputf8,
    eightBit: m.eightBit,
    wireSafe: m.wireSafe,
    journal: m.journal,
    // a spool file holds the message in its first m.size octets (its envelope follows); a whole
    // wire-safe message in memory is one chunk, marked for dot-stuffing's one-search path
    open: () => (buffer ? Readable.from([m.wireSafe ? markWireSafe(buffer) : buffer], { objectMode: false }) : m.size === 0 ? Readable.from([], { objectMode: false }) : createReadStream(m.file!, { start: 0, end: m.size - 1 })),
    read: async () => buffer ?? (await readFile(m.file!)).subarray(0, m.size),
  };
}

let transport: Transport | undefined;
try {
  transport = createSmtpTransport(setup.upstream, { logger, hostname: setup.hostname, configDir: setup.configDir });
  post({ op: 'ready' });
} catch (e) {
  post({ op: 'failed', code: (e as { code?: string }).code, error: (e as Error).message });
}

port.on('message', (req: ThreadRequest) => {
  if (!transport) return post({ seq: req.seq, ok: false, error: 'the SMTP transport did not start' });
  const work = req.op === 'send' ? transport.send(fromWire(req.message))
    : req.op === 'verify' ? (transport.verify?.() ?? Promise.resolve({ ok: true, detail: '' }))
    : transport.close();
  work.then(
    (value) => post({ seq: req.seq, ok: true, value }),
    (e: Error) => post({ seq: req.seq, ok: false, error: e.message }),
  ).finally(() => {
    if (req.op === 'close') port.close();
  });
});
