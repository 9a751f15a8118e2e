// Test helper (not a test): opens the spool (boot id read from argv[3]) and enqueues, printing a line
// after each resolves: "ACKED id" (client's message, acknowledged as the listener does before its
// 250), "UNACKED id" (client's message, killed before its acknowledgement), "PICKUP id" (no client
// to answer); then "DONE", and waits to be killed.
import { Readable } from 'node:stream';
import { openSpool } from '../../src/queue/spool.ts';
import { systemClock } from '../../src/core/clock.ts';
import { silentLogger } from '../../src/core/logger.ts';

const [mailroot, bootIdSource] = process.argv.slice(2);
const spool = await openSpool({ mailrootPath: mailroot }, { clock: systemClock, logger: silentLogger(), bootIdSource });
const env = (source: 'smtp' | 'pickup', i: number) => ({ mailFrom: `printer${i}@example.com`, recipients: [`a${i}@example.org`], client: { address: '127.0.0.1', source }, receivedAt: new Date().toISOString(), size: 0 });
const body = (i: number) => Buffer.from(`Subject: m${i}\r\n\r\nbody ${i}\r\n`);
const out = (what: string, id: string) => process.stdout.write(`${what} ${id}\n`);
for (let i = 0; i < 9; i++) {
  if (i % 3 === 0) {
    const id = await spool.enqueue(env('smtp', i), body(i), undefined, { acknowledgeLater: true });
    spool.acknowledge(id);
    out('ACKED', id);
  } else if (i % 3 === 1) {
    // one of them streamed (a big message's path: its file is closed, the mark cleared by name)
    const id = await spool.enqueue(env('smtp', i), i === 4 ? Readable.from([body(i)]) : body(i), undefined, { acknowledgeLater: true });
    out('UNACKED', id);
  } else out('PICKUP', await spool.enqueue(env('pickup', i), body(i)));
}
// the streamed path acknowledged too
const streamed = await spool.enqueue(env('smtp', 9), Readable.from([body(9)]), undefined, { acknowledgeLater: true });
spool.acknowledge(streamed);
out('ACKED', streamed);
process.stdout.write('DONE\n');
setInterval(() => {}, 1000);
