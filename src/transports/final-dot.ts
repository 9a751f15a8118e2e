/**
 * Did a message's final dot leave for the upstream? A connection lost without a reply means the
 * upstream may have the message only if the "." that ends DATA was written to the socket (handed to
 * the kernel); then the retry is flagged possibleDuplicate. An upstream that stalled mid-DATA never
 * got the dot: its copy is incomplete and discarded, so the retry is no duplicate.
 *
 * nodemailer pipes the message into its DataStream (dot-stuffing, then the final "\r\n.\r\n"), and
 * the DataStream into the connection's socket. The DataStream ends once its last chunk, the one
 * with the dot, was given to socket.write; that write may still wait in the socket's buffer (an
 * upstream that stopped reading). An empty write queued behind it completes only when everything
 * before it has been written: its callback without error says the dot left.
 */
import type { Readable, Writable } from 'node:stream';

export interface FinalDotWatch {
  /** The final dot was written to the socket. */
  readonly sent: boolean;
}

const EMPTY = Buffer.alloc(0);

/** Watches `source`, the stream nodemailer will pipe into its DataStream (raw-send.ts). */
export function watchFinalDot(source: Readable): FinalDotWatch {
  const state = { sent: false };
  const pipe = source.pipe;
  source.pipe = function pipeWatched<T extends NodeJS.WritableStream>(this: Readable, dest: T, options?: { end?: boolean }): T {
    const out = pipe.call(this, dest, options) as T;
    const dataStream = dest as unknown as Readable;
    // nodemailer piped its DataStream into the socket before piping the message into it. Taken now:
    // that pipe's own 'end' listener, registered before ours, unpipes the socket before ours runs.
    const socket = (dataStream as unknown as { _readableState?: { pipes?: Writable[] } })._readableState?.pipes?.[0];
    dataStream.once('end', () => {
      if (!socket || typeof socket.write !== 'function') {
        // not the shape this was written for (a nodemailer or Node change): assume it left, as
        // before; a flag too many is safe, one missing is not
        state.sent = true;
        return;
      }
      if (socket.destroyed || socket.writableEnded) return;
      socket.write(EMPTY, (err) => {
        if (!err) state.sent = true;
      });
    });
    return out;
  } as Readable['pipe'];
  return state;
}
