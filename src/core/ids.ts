/** Queue ids: time-ordered, unique across restarts and processes, safe as file names. */
import { randomBytes } from 'node:crypto';

let counter = 0;

/** e.g. "20261125T174501Z-3f9a1c2b7d-0001": arrival time first, so `ls` sorts by arrival. */
export function newQueueId(now = Date.now()): string {
  const t = new Date(now).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  counter = (counter + 1) % 0x10000;
  return `${t}-${randomBytes(5).toString('hex')}-${counter.toString(16).padStart(4, '0')}`;
}

export function isQueueId(s: string): boolean {
  return /^\d{8}T\d{6}Z-[0-9a-f]{10}-[0-9a-f]{4}$/.test(s);
}
