/** Queue ids: time-ordered, unique across restarts and processes, safe as file names. */
import { randomFillSync } from 'node:crypto';
import { SmarthostError } from './errors.ts';

let counter = 0;

/**
 * Random bytes drawn 8 KB at a time for ids (queue ids, session ids): one randomBytes() call per id
 * cost ~20 µs of the event loop per message on the bench machine (a CSPRNG system call each time).
 */
const pool = Buffer.alloc(8192);
let poolNext = pool.length;

/** `n` random octets (n ≤ 64) from the pool, as hex. */
export function randomHex(n: number): string {
  if (poolNext + n > pool.length) {
    randomFillSync(pool);
    poolNext = 0;
  }
  poolNext += n;
  return pool.toString('hex', poolNext - n, poolNext);
}

/** e.g. "20261125T174501Z-3f9a1c2b7d-0001": arrival time first, so `ls` sorts by arrival. */
export function newQueueId(now = Date.now()): string {
  const t = new Date(now).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  counter = (counter + 1) % 0x10000;
  return `${t}-${randomHex(5)}-${counter.toString(16).padStart(4, '0')}`;
}

export function isQueueId(s: string): boolean {
  return /^\d{8}T\d{6}Z-[0-9a-f]{10}-[0-9a-f]{4}$/.test(s);
}

/**
 * The one id among `ids` that is `prefix` or starts with it (an admin types the first characters,
 * as with git); undefined when none does. Several: SH_USAGE naming them, so the admin can pick.
 */
export function resolveIdPrefix(prefix: string, ids: Iterable<string>, truncated = false): string | undefined {
  const matches: string[] = [];
  for (const id of ids) {
    if (id === prefix) return id;
    if (prefix && id.startsWith(prefix)) matches.push(id);
  }
  if (matches.length <= 1) return matches[0];
  matches.sort();
  const shown = matches.slice(0, 10).join(', ');
  throw new SmarthostError('SH_USAGE', `"${prefix}" is the start of ${truncated ? 'more than 10' : matches.length} queue ids: ${shown}${matches.length > 10 || truncated ? ', …' : ''}; give more of the id`);
}
