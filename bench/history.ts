/**
 * History benchmark: a year of a busy office's mail, then the searches an admin makes.
 *
 *   node bench/history.ts [--count 1000000] [--searches 200] [--store sqlite|postgres]
 *                         [--postgres-url postgres://…] [--dir DIR] [--keep]
 *
 * Inserts --count messages (each: an `accepted` event, an attempt with the upstream's reply and
 * a final state; 1–3 recipients from 5,000 addresses, senders from 400 devices and people, spread
 * over 365 days) through the real recorder — record() then flush() every 20,000 messages, so memory
 * stays bounded — and prints the insert rate. Then it times --searches searches by recipient and
 * as many by sender (first page, 50 rows, as the console asks) on addresses that exist, printing
 * p50/p95/max. The bar (issue 7): p95 under 50 ms for both on 1,000,000 messages.
 * A benchmark, not a test: nothing here is asserted; results go to stdout (and docs/history.md).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { systemClock } from '../src/core/clock.ts';
import { silentLogger } from '../src/core/logger.ts';
import type { QueueEvent } from '../src/core/types.ts';
import { openHistory } from '../src/history/index.ts';

const { values: args } = parseArgs({
  options: {
    count: { type: 'string', default: '1000000' },
    searches: { type: 'string', default: '200' },
    store: { type: 'string', default: 'sqlite' },
    'postgres-url': { type: 'string' },
    dir: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const COUNT = Math.min(Number(args.count), 5_000_000);
const SEARCHES = Math.min(Number(args.searches), 5000);
const CHUNK = 20_000;
const YEAR = 365 * 86_400_000;

// A deterministic generator, so runs compare.
// xorshift32 in 32-bit integer arithmetic (a float LCG would lose precision and cycle early).
let seed = 42;
const rand = (): number => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 2 ** 32;
};
const pick = <T>(a: T[]): T => a[Math.floor(rand() * a.length)];
const recipients = Array.from({ length: 5000 }, (_, i) => `user${i}@example${i % 20}.com`);
const senders = Array.from({ length: 400 }, (_, i) => (i < 100 ? `scanner${i}@office.example` : `person${i}@office.example`));

function messageEvents(i: number, start: number): QueueEvent[] {
  const id = `b${String(i).padStart(8, '0')}`;
  const at = start + Math.floor((i / COUNT) * YEAR);
  const to = Array.from({ length: 1 + Math.floor(rand() * 3) }, () => pick(recipients));
  const iso = new Date(at).toISOString();
  const late = new Date(at + 900).toISOString();
  const ok = rand() > 0.02;
  return [
    { type: 'accepted', id, at: iso, envelope: { mailFrom: pick(senders), recipients: to, receivedAt: iso, size: 1000 + Math.floor(rand() * 200_000), subject: `Scan ${i}`, client: { address: `10.0.${i % 50}.${i % 200}`, source: 'smtp' } } },
    { type: 'attempt', id, at: late, upstream: 'o365', durationMs: 300, outcomes: to.map((r) => ({ recipient: r, action: ok ? 'delivered' : 'failed', status: ok ? '2.0.0' : '5.7.1', diagnostic: ok ? '250 2.0.0 OK' : '550 5.7.1 Client does not have permissions to send as this sender', transport: 'smtp', at: late })) },
    { type: 'state', id, at: late, state: ok ? 'delivered' : 'badmail' },
  ];
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main(): Promise<void> {
  const dir = args.dir ?? mkdtempSync(path.join(os.tmpdir(), 'smarthost-bench-history-'));
  const store = args.store === 'postgres' ? 'postgres' : 'sqlite';
  if (store === 'postgres' && !args['postgres-url']) throw new Error('--store postgres needs --postgres-url');
  const h = openHistory(
    { history: { store, postgresUrl: args['postgres-url'], retention: 2 * YEAR }, mailrootPath: dir },
    { logger: silentLogger(), clock: systemClock, purgeEveryMs: 0, recorder: { batchSize: 2000, maxBacklog: 1_000_000 } },
  );
  const start = Date.now() - YEAR;
  console.log(`history bench: ${COUNT} messages into ${store}${store === 'sqlite' ? ` (${dir}/history.sqlite)` : ''}`);
  const t0 = performance.now();
  let recordMs = 0;
  for (let i = 0; i < COUNT; i += CHUNK) {
    const r0 = performance.now();
    for (let j = i; j < Math.min(COUNT, i + CHUNK); j++) for (const e of messageEvents(j, start)) h.record(e);
    recordMs += performance.now() - r0;
    await h.flush();
    if (!h.health().ok) throw new Error(h.health().summary);
    if ((i / CHUNK) % 10 === 0) process.stdout.write(`  ${i + CHUNK} messages, ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
  }
  const insertS = (performance.now() - t0) / 1000;
  console.log(`inserted ${COUNT} messages (${COUNT * 3} events) in ${insertS.toFixed(1)} s: ${(COUNT / insertS).toFixed(0)} messages/s; record() itself ${((recordMs * 1000) / (COUNT * 3)).toFixed(2)} µs per event (incl. building it)`);

  for (const [kind, pool] of [['recipient', recipients], ['sender', senders]] as const) {
    const times: number[] = [];
    let rows = 0;
    for (let i = 0; i < SEARCHES; i++) {
      const q = pick(pool as string[]);
      const s0 = performance.now();
      const r = await h.search(kind === 'recipient' ? { recipient: q, limit: 50 } : { sender: q, limit: 50 });
      times.push(performance.now() - s0);
      rows += r.messages.length;
    }
    times.sort((a, b) => a - b);
    console.log(`search by ${kind}: ${SEARCHES} searches, ${(rows / SEARCHES).toFixed(0)} rows each: p50 ${percentile(times, 50).toFixed(2)} ms, p95 ${percentile(times, 95).toFixed(2)} ms, max ${times[times.length - 1].toFixed(2)} ms (bar: p95 < 50 ms)`);
  }
  const s0 = performance.now();
  const d = await h.search({ recipient: '@example7.com', limit: 50 });
  console.log(`search by recipient domain: ${d.messages.length} rows in ${(performance.now() - s0).toFixed(2)} ms`);
  await h.close();
  if (!args.keep && !args.dir) rmSync(dir, { recursive: true, force: true });
}

main().catch((err: Error) => {
  console.error(`history bench failed: ${err.message}`);
  process.exitCode = 1;
});
