/**
 * A faster body for nodemailer's DataStream, the stream that prepares a message for the SMTP DATA
 * phase (dot-stuffing, bare CR / bare LF → CRLF). nodemailer's own loops in JavaScript over every
 * byte: at 100 KB per message that was 13% of the relay's event loop. This version jumps from line
 * end to line end with indexOf (native) and passes a chunk that needs nothing on uncopied; its
 * output, byte counts and carried state are the same as the original for every input.
 *
 * installFastDotStuffing() replaces DataStream.prototype._transform once, and only after checking,
 * on a set of tricky inputs cut at every position, that both give the same bytes. If nodemailer
 * changes (different fields, different output), the check fails and the original stays in place:
 * slower, never wrong. test/transports/dot-stuffing.test.ts compares both on random input.
 */
import { Transform, type TransformCallback } from 'node:stream';
import DataStream from 'nodemailer/lib/smtp-connection/data-stream';

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const INSERT_LF = Buffer.from('\n');
const INSERT_LF_DOT = Buffer.from('\n.');
const INSERT_CR = Buffer.from('\r');
const INSERT_DOT = Buffer.from('.');

/** The fields of nodemailer's DataStream this body reads and writes. */
interface DataStreamState extends Transform {
  inByteCount: number;
  outByteCount: number;
  lastByte: number | false;
}

type TransformBody = (this: DataStreamState, chunk: Buffer | string, encoding: BufferEncoding, done: TransformCallback) => void;

/**
 * Buffers known to hold whole CRLF lines only (a message the SMTP intake marked wireSafe, given to
 * the delivery thread whole). For them nodemailer's rules reduce to one: a dot after a line end (or
 * first) gets another dot; there is no bare CR or LF to repair. So one search for "\n." replaces
 * two searches per line: at 100 KB that was most of the delivery thread's 0.7 ms per message in
 * its two per-line passes (this and line-normalizer.ts). A WeakSet: the mark goes with the Buffer.
 */
const wireSafeChunks = new WeakSet<Buffer>();
const LF_DOT = Buffer.from('\n.');

/** Marks `chunk` as whole CRLF lines only (see wireSafeChunks); returns it. */
export function markWireSafe(chunk: Buffer): Buffer {
  wireSafeChunks.add(chunk);
  return chunk;
}

/** Same rules as nodemailer's: see the header. `this` is a DataStream. */
export function fastTransform(this: DataStreamState, input: Buffer | string, _encoding: BufferEncoding, done: TransformCallback): void {
  if (!input || !input.length) return done();
  const chunk = typeof input === 'string' ? Buffer.from(input) : input;
  const len = chunk.length;
  if (wireSafeChunks.has(chunk) && this.lastByte !== CR) return wireSafeTransform.call(this, chunk, done);
  this.inByteCount += len;
  const parts: Buffer[] = [];
  let outLength = 0;
  let last = 0;
  const insert = (pos: number, bytes: Buffer): void => {
    if (pos > last) {
      parts.push(chunk.subarray(last, pos));
      outLength += pos - last;
    }
    parts.push(bytes);
    outLength += bytes.length;
    last = pos;
  };
  // The first byte is judged against the last byte of the previous chunk.
  const prev = this.lastByte;
  const first = chunk[0];
  if (prev === CR && first !== LF) insert(0, first === DOT ? INSERT_LF_DOT : INSERT_LF);
  else if (first === LF && prev !== CR) insert(0, INSERT_CR);
  else if (first === DOT && (prev === LF || prev === false)) insert(0, INSERT_DOT);
  // Every other decision sits at a CR or LF or the byte just after one.
  let cr = chunk.indexOf(CR);
  let lf = chunk.indexOf(LF);
  while (cr >= 0 || lf >= 0) {
    const p = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
    const next = p + 1;
    if (p === cr) {
      if (next < len && chunk[next] !== LF) insert(next, chunk[next] === DOT ? INSERT_LF_DOT : INSERT_LF);
      cr = chunk.indexOf(CR, next);
    } else {
      if (p > 0 && chunk[p - 1] !== CR) insert(p, INSERT_CR);
      if (next < len && chunk[next] === DOT) insert(next, INSERT_DOT);
      lf = chunk.indexOf(LF, next);
    }
  }
  if (parts.length) {
    if (last < len) {
      parts.push(chunk.subarray(last));
      outLength += len - last;
    }
    this.outByteCount += outLength;
    this.push(Buffer.concat(parts, outLength));
  } else {
    this.outByteCount += len;
    this.push(chunk);
  }
  this.lastByte = chunk[len - 1];
  done();
}

/** fastTransform for a chunk of whole CRLF lines, after a chunk that did not end in CR. */
function wireSafeTransform(this: DataStreamState, chunk: Buffer, done: TransformCallback): void {
  const len = chunk.length;
  this.inByteCount += len;
  const parts: Buffer[] = [];
  let last = 0;
  if (chunk[0] === DOT && (this.lastByte === LF || this.lastByte === false)) parts.push(INSERT_DOT);
  for (let p = chunk.indexOf(LF_DOT); p >= 0; p = chunk.indexOf(LF_DOT, p + 2)) {
    parts.push(chunk.subarray(last, p + 1), INSERT_DOT);
    last = p + 1;
  }
  if (parts.length) {
    parts.push(chunk.subarray(last));
    const out = Buffer.concat(parts);
    this.outByteCount += out.length;
    this.push(out);
  } else {
    this.outByteCount += len;
    this.push(chunk);
  }
  this.lastByte = chunk[len - 1];
  done();
}

/** Runs `body` as a DataStream's _transform over `chunks` and returns everything it pushed. */
export function runBody(body: TransformBody, chunks: Buffer[]): { out: Buffer; inBytes: number; outBytes: number; lastByte: number | false } {
  const stream = new (DataStream as unknown as new () => DataStreamState)();
  const pushed: Buffer[] = [];
  stream.push = (c: Buffer | null) => {
    if (c) pushed.push(Buffer.from(c));
    return true;
  };
  for (const c of chunks) body.call(stream, c, 'latin1', () => {});
  return { out: Buffer.concat(pushed), inBytes: stream.inByteCount, outBytes: stream.outByteCount, lastByte: stream.lastByte };
}

/** Inputs that exercise every rule and every chunk boundary. */
const SAMPLES = ['.\r\n..\r\nx\r\n', 'a\rb\n.c\r.d\r\n.\r\n', '\n\n.\r\r.\r\n\r', 'line\r\n.\r\nmore\n.\n', '\r'];

function agreesWithOriginal(original: TransformBody): boolean {
  for (const text of SAMPLES) {
    const all = Buffer.from(text);
    for (let cut = 0; cut <= all.length; cut++) {
      const chunks = [all.subarray(0, cut), all.subarray(cut)].filter((c) => c.length);
      const a = runBody(original, chunks);
      const b = runBody(fastTransform, chunks);
      if (!a.out.equals(b.out) || a.inBytes !== b.inBytes || a.outBytes !== b.outBytes || a.lastByte !== b.lastByte) return false;
    }
  }
  return true;
}

let installed: boolean | undefined;
/** The original body, kept for the tests' comparison. */
export let originalTransform: TransformBody | undefined;

/** Replaces nodemailer's DataStream body with fastTransform once it proves identical; returns whether it did. */
export function installFastDotStuffing(): boolean {
  if (installed !== undefined) return installed;
  const proto = (DataStream as unknown as { prototype: { _transform: TransformBody } }).prototype;
  originalTransform = proto._transform;
  try {
    installed = typeof originalTransform === 'function' && agreesWithOriginal(originalTransform);
  } catch {
    installed = false;
  }
  if (installed) proto._transform = fastTransform;
  return installed;
}
