/**
 * A faster body for smtp-server's data-mode parser (SMTPStream#_feedDataStream), which finds the
 * end of a message ("\r\n.\r\n") and removes escape dots. The library visits every byte of the
 * message in a JavaScript loop: at 100 KB per message that was about 0.3 ms of the event loop per
 * message, the largest single item of a CPU profile at 10 sessions. This version jumps from one
 * "\n." to the next with Buffer#indexOf (native) and otherwise does exactly what the library does:
 * the same bytes emitted in the same pieces' order, the same byte counts, the same four bytes kept
 * back for the next chunk, the same end and remainder. One difference on purpose: escape dots
 * within a chunk are handled in the same call instead of one event-loop turn each.
 *
 * The library's parser carries a smuggling fix (`_atDataStart`), so it is not replaced blindly:
 * verifyFastDataFeed() runs both on inputs cut at every position and the fast one is used only once
 * they agree. If smtp-server changes (other fields, other output), the check fails and the library's
 * own loop stays: slower, never different. test/inbound/fast-data-feed.test.ts compares both on
 * random input.
 */
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';

type Callback = (err?: Error | null) => void;
type FeedBody = (this: SMTPStream, chunk: Buffer, done: Callback) => void;

const LF_DOT = Buffer.from('\n.');
const END = Buffer.from('\r\n.\r\n');
const DOT_CRLF = Buffer.from('.\r\n');
const DOT = 0x2e;

/** Same rules as SMTPStream#_feedDataStream (smtp-server 3.21); `this` is the SMTPStream in data mode. */
export function fastFeedDataStream(this: SMTPStream, input: Buffer, done: Callback): void {
  const dataStream = this._dataStream!;
  let chunk = input;
  if (this._lastBytes && this._lastBytes.length) {
    chunk = Buffer.concat([this._lastBytes, chunk], this._lastBytes.length + chunk.length);
    this._lastBytes = false;
  }
  let len = chunk.length;
  // A message whose first line is the terminator (see the library: only while nothing was consumed).
  if (this._atDataStart && len >= 3 && chunk[0] === DOT && chunk.compare(DOT_CRLF, 0, 3, 0, 3) === 0) {
    this._endDataMode(false, chunk.subarray(3), done);
    return;
  }
  if (this._atDataStart && len >= 2 && chunk[0] === DOT && chunk[1] === DOT) {
    chunk = chunk.subarray(1);
    len--;
    this._atDataStart = false;
  }
  /** First byte not yet emitted. */
  let start = 0;
  // The library checks every i in [2, len - 2) where chunk[i] is a dot after LF; those are the
  // "\n." at p = i - 1 >= 1 with i < len - 2. After an escape it goes on with the chunk from the
  // second dot, checking from two bytes after that dot: no "\n." can start before that anyway.
  for (let p = chunk.indexOf(LF_DOT, 1); p >= 0 && p + 1 < len - 2; p = chunk.indexOf(LF_DOT, p + 1)) {
    const i = p + 1;
    if (chunk.compare(END, 0, 5, i - 2, i + 3) === 0) {
      const buf = chunk.subarray(start, i);
      this._countDataBytes(buf.length);
      this._endDataMode(buf, chunk.subarray(i + 3), done);
      return;
    }
    if (chunk[i + 1] === DOT) {
      const buf = chunk.subarray(start, i);
      this._lastBytes = false;
      this._countDataBytes(buf.length);
      if (dataStream.writable) dataStream.write(buf);
      start = i + 1; // drop the escape dot
    }
  }
  // Keep the last bytes (up to 4) for the next chunk, emit the rest.
  const rest = len - start;
  this._lastBytes = rest < 4 ? chunk.subarray(start) : chunk.subarray(len - 4);
  if (this._lastBytes.length >= rest) return done();
  const buf = chunk.subarray(start, len - this._lastBytes.length);
  this._countDataBytes(buf.length);
  if (!dataStream.writable) return done();
  const handled = dataStream.write(buf);
  if (handled || dataStream.destroyed) return done();
  // a stream that the application destroys never drains, it only closes
  const onDrain = (): void => {
    dataStream.removeListener('drain', onDrain);
    dataStream.removeListener('close', onDrain);
    done();
  };
  dataStream.once('drain', onDrain);
  dataStream.once('close', onDrain);
}

/** What a feed body did with some input: the bytes it emitted, where it ended and what followed. */
export interface FeedResult {
  data: Buffer;
  /** Bytes counted (SMTPStream#dataBytes). */
  counted: number;
  ended: boolean;
  remainder: Buffer;
  /** Bytes kept back when the input ran out without the terminator. */
  kept: Buffer;
}

/** Runs `body` as the data-mode parser of a fresh SMTPStream over `chunks`. */
export async function runFeed(body: FeedBody, chunks: Buffer[]): Promise<FeedResult> {
  const stream = new SMTPStream();
  const emitted: Buffer[] = [];
  let ended = false;
  let remainder = Buffer.alloc(0);
  stream.startDataMode();
  // A data stream that takes everything at once, so only the parser's own decisions show.
  const sink = { writable: true, destroyed: false, byteLength: 0, sizeExceeded: false, write: (b: Buffer) => (emitted.push(Buffer.from(b)), true) };
  stream._dataStream = sink as unknown as SMTPStream['_dataStream'];
  stream._endDataMode = (last: Buffer | false, rest: Buffer, callback: Callback) => {
    if (last && last.length) emitted.push(Buffer.from(last));
    ended = true;
    remainder = Buffer.from(rest);
    callback();
  };
  for (const chunk of chunks) {
    if (ended) {
      remainder = Buffer.concat([remainder, chunk]);
      continue;
    }
    await new Promise<void>((resolve, reject) => body.call(stream, chunk, (err) => (err ? reject(err) : resolve())));
  }
  return { data: Buffer.concat(emitted), counted: stream.dataBytes, ended, remainder, kept: ended ? Buffer.alloc(0) : Buffer.from(stream._lastBytes || Buffer.alloc(0)) };
}

/** Inputs that exercise every rule: the terminator first, escapes, a dot after a bare LF, the end cut anywhere. */
const SAMPLES = ['.\r\nQUIT\r\n', '..\r\n.\r\n', 'a\r\n..b\r\n.\r\nX', '\r\n.\r\n', 'x\n.\r\n..\n.\r\n.\r\nRSET\r\n', 'ab\r\n...\r\n.x\r\n..\r\n.\r\n', '..', 'a\r\n.', '\r\n..\r\n..\r\n..\r\n.\r\n'];

function same(a: FeedResult, b: FeedResult): boolean {
  return a.data.equals(b.data) && a.counted === b.counted && a.ended === b.ended && a.remainder.equals(b.remainder) && a.kept.equals(b.kept);
}

/**
 * Whether the fast body gives what `original` gives on every sample cut at every position, once or
 * twice with up to 4 bytes between the cuts (the bytes the parser keeps back between chunks).
 */
export async function agreesWithLibrary(original: FeedBody, candidate: FeedBody = fastFeedDataStream): Promise<boolean> {
  for (const text of SAMPLES) {
    const all = Buffer.from(text);
    for (let a = 0; a <= all.length; a++) {
      for (let b = a; b <= Math.min(a + 4, all.length); b++) {
        const chunks = [all.subarray(0, a), all.subarray(a, b), all.subarray(b)].filter((c) => c.length);
        if (!same(await runFeed(original, chunks), await runFeed(candidate, chunks))) return false;
      }
    }
  }
  return true;
}

/** The library's own body, for the tests' comparison. */
export const libraryFeedDataStream: FeedBody = SMTPStream.prototype._feedDataStream;

let state: 'unchecked' | 'checking' | 'in use' | 'refused' = 'unchecked';
let check: Promise<boolean> | undefined;

/**
 * Starts the check once (about 70 ms of CPU, so only in a process that receives mail: at its first
 * message, which the library's own loop parses meanwhile) and settles with whether the fast body is
 * now in use.
 */
export function verifyFastDataFeed(): Promise<boolean> {
  if (!check) {
    state = 'checking';
    check = agreesWithLibrary(libraryFeedDataStream).then(
      (ok) => ((state = ok ? 'in use' : 'refused'), ok),
      () => ((state = 'refused'), false),
    );
  }
  return check;
}

/** Whether the fast body is in use (false until the check has passed; the first call starts it). */
export function fastDataFeedInUse(): boolean {
  if (state === 'unchecked') void verifyFastDataFeed();
  return state === 'in use';
}
