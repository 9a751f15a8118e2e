// Test helper (not a test): enqueues N messages, prints "OK <id>" after each resolves, then waits to be killed.
import { openSpool } from '../../src/queue/spool.ts';
import { systemClock } from '../../src/core/clock.ts';
import { silentLogger } from '../../src/core/logger.ts';

const [mailroot, count] = process.argv.slice(2);
const spool = await openSpool({ mailrootPath: mailroot }, { clock: systemClock, logger: silentLogger() });
const envelope = { mailFrom: 'printer@example.com', recipients: ['a@example.org'], client: { address: '127.0.0.1', source: 'smtp' as const }, receivedAt: new Date().toISOString(), size: 0 };
await Promise.all(Array.from({ length: Number(count) }, async (_, i) => {
  const id = await spool.enqueue(envelope, Buffer.from(`Subject: m${i}\r\n\r\nbody ${i}\r\n`));
  process.stdout.write(`OK ${id}\n`);
}));
process.stdout.write('DONE\n');
setInterval(() => {}, 1000);
