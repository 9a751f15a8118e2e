// watchFinalDot (src/transports/final-dot.ts) on the stream shapes nodemailer builds: its DataStream
// piped into the socket first, then the message piped into the DataStream.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { PassThrough, Writable } from 'node:stream';
import test from 'node:test';
import { watchFinalDot } from '../../src/transports/final-dot.ts';
import { waitUntil } from '../helpers/wait.ts';

function shapes(write: (chunk: Buffer, done: (err?: Error | null) => void) => void) {
  const socket = new Writable({ highWaterMark: 1 << 20, write: (chunk: Buffer, _enc, done) => write(chunk, done) });
  socket.on('error', () => {});
  const dataStream = new PassThrough();
  dataStream.pipe(socket, { end: false });
  const message = new PassThrough();
  const watch = watchFinalDot(message);
  message.pipe(dataStream);
  return { socket, dataStream, message, watch };
}

test('the dot counts as sent once the socket has written it', async () => {
  const { dataStream, message, watch } = shapes((_chunk, done) => setImmediate(done));
  message.end(Buffer.from('Subject: x\r\n\r\nbody\r\n.\r\n'));
  await once(dataStream, 'end');
  await waitUntil('the dot to count as sent', () => watch.sent, 10_000);
});

test('the dot still in the socket\'s buffer when the connection breaks does not count as sent', async () => {
  // an upstream that stopped reading: the socket's first write never completes
  const { socket, dataStream, message, watch } = shapes(() => {});
  message.end(Buffer.from('Subject: x\r\n\r\nbody\r\n.\r\n'));
  await once(dataStream, 'end');
  // The socket's first write never completes, so nothing behind it can: no wait makes this true.
  await new Promise((res) => setImmediate(res));
  assert.equal(watch.sent, false, 'nothing has left yet');
  const closed = new Promise((res) => socket.once('close', res));
  socket.destroy(new Error('connection reset'));
  await closed; // the pending writes' callbacks (with the error) have run by now
  await new Promise((res) => setImmediate(res));
  assert.equal(watch.sent, false, 'the dot never reached the kernel: the upstream cannot have the message');
});
