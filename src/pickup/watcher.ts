/**
 * The pickup folder (<mailroot>/pickup/), as IIS had it: a message file dropped there is taken,
 * queued through the one enqueue path, and removed.
 *
 * Guarantees:
 *  - a file still being written is not taken: it must keep the same size and mtime for
 *    pickup.settle first; names starting with "." or ending in ".tmp" are never taken;
 *  - never taken twice, never lost: a file is first renamed to ".processing-<name>" (an atomic
 *    claim), and removed only after enqueue() resolved (after fsync) or after quarantine() stored
 *    it in badmail with its reason. If the relay stops in between, start() renames leftover
 *    ".processing-" files back, so they are taken again (at least once, never zero);
 *  - a file that is not a message goes to badmail (quarantine) with a plain-words reason, never
 *    deleted silently; if enqueue or quarantine fails, the file is put back and retried later.
 * Scans run on fs.watch events and every pickup.interval; scans never overlap.
 */
import { mkdirSync, watch, type FSWatcher } from 'node:fs';
import { readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { systemClock, type Clock } from '../core/clock.ts';
import type { Logger } from '../core/logger.ts';
import type { Enqueuer, Envelope, Quarantine } from '../core/types.ts';
import type { Config } from '../config/schema.ts';
import { parsePickupFile } from './formats.ts';

const CLAIM_PREFIX = '.processing-';

export interface PickupDeps {
  enqueue: Enqueuer;
  quarantine: Quarantine;
  logger: Logger;
  clock?: Clock;
}

export interface ScanResult {
  queued: string[];
  quarantined: string[];
  /** Files seen but not yet settled. */
  waiting: string[];
}

export interface PickupWatcher {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** One pass over the folder (tests call it directly). */
  scanOnce(): Promise<ScanResult>;
  readonly folder: string;
}

interface Seen {
  size: number;
  mtimeMs: number;
  since: number;
}

export function ignoredName(name: string): boolean {
  return name.startsWith('.') || name.toLowerCase().endsWith('.tmp');
}

export function createPickupWatcher(config: Config, deps: PickupDeps): PickupWatcher {
  const clock = deps.clock ?? systemClock;
  const folder = path.join(config.mailrootPath, 'pickup');
  const seen = new Map<string, Seen>();
  let watcher: FSWatcher | undefined;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<ScanResult> | undefined;
  let again = false;
  let stopped = true;

  /** Whether the file has kept its size and mtime for the settle time. */
  async function settled(name: string): Promise<boolean> {
    let st;
    try {
      st = await stat(path.join(folder, name));
    } catch {
      seen.delete(name);
      return false;
    }
    if (!st.isFile()) return false;
    const now = clock.now();
    const prev = seen.get(name);
    if (!prev || prev.size !== st.size || prev.mtimeMs !== st.mtimeMs) {
      seen.set(name, { size: st.size, mtimeMs: st.mtimeMs, since: now });
      return config.pickup.settle === 0;
    }
    return now - prev.since >= config.pickup.settle;
  }

  async function take(name: string, result: ScanResult): Promise<void> {
    const original = path.join(folder, name);
    const claimed = path.join(folder, `${CLAIM_PREFIX}${name}`);
    try {
      await rename(original, claimed);
    } catch {
      return; // gone or taken meanwhile
    }
    seen.delete(name);
    const putBack = async (why: string): Promise<void> => {
      deps.logger.warn({ event: 'pickup-retry', file: name, reason: why }, `pickup file ${name} put back, will retry: ${why}`);
      await rename(claimed, original).catch(() => {});
    };
    let raw: Buffer;
    try {
      raw = await readFile(claimed);
    } catch (err) {
      return putBack(`could not read it (${(err as Error).message})`);
    }
    const parsed = raw.length > config.limits.maxMessageSize
      ? { error: `The file is ${raw.length} bytes, larger than the message size limit (limits.maxMessageSize, ${config.limits.maxMessageSize} bytes).` }
      : parsePickupFile(raw, { hostname: config.hostnameResolved, now: new Date(clock.now()) });
    if ('error' in parsed) {
      try {
        await deps.quarantine.quarantine(raw, `Pickup file "${name}" was not sent. ${parsed.error}`, name);
      } catch (err) {
        return putBack(`could not move it to badmail (${(err as Error).message})`);
      }
      await unlink(claimed).catch(() => {});
      result.quarantined.push(name);
      deps.logger.warn({ event: 'pickup-quarantined', file: name, reason: parsed.error }, `pickup file ${name} moved to badmail: ${parsed.error}`);
      return;
    }
    const envelope: Envelope = {
      mailFrom: parsed.mailFrom,
      recipients: parsed.recipients,
      client: { address: '', source: 'pickup' },
      receivedAt: new Date(clock.now()).toISOString(),
      size: parsed.content.length,
      subject: parsed.subject,
      headerFrom: parsed.headerFrom,
      repairs: parsed.repairs.length ? parsed.repairs : undefined,
    };
    let id: string;
    try {
      id = await deps.enqueue.enqueue(envelope, parsed.content);
    } catch (err) {
      return putBack(`could not queue it (${(err as Error).message})`);
    }
    await unlink(claimed).catch(() => {});
    result.queued.push(id);
    deps.logger.info({ event: 'pickup-queued', file: name, id, format: parsed.format, mailFrom: parsed.mailFrom, recipients: parsed.recipients, subject: parsed.subject, repairs: envelope.repairs }, `pickup file ${name} queued as ${id}${envelope.repairs ? ` (${envelope.repairs.join('; ')})` : ''}`);
  }

  async function scan(): Promise<ScanResult> {
    const result: ScanResult = { queued: [], quarantined: [], waiting: [] };
    let names: string[];
    try {
      names = await readdir(folder);
    } catch (err) {
      deps.logger.error({ event: 'pickup-error', folder, err: (err as Error).message }, 'pickup folder cannot be read');
      return result;
    }
    for (const name of [...seen.keys()]) if (!names.includes(name)) seen.delete(name);
    for (const name of names.sort()) {
      if (ignoredName(name)) continue;
      if (await settled(name)) await take(name, result);
      else if (seen.has(name)) result.waiting.push(name);
    }
    return result;
  }

  /** Runs a scan, or marks that another is needed when one is running. */
  function scanOnce(): Promise<ScanResult> {
    if (running) {
      again = true;
      return running;
    }
    running = scan().finally(() => {
      running = undefined;
      if (again && !stopped) {
        again = false;
        void scanOnce();
      }
    });
    return running;
  }

  /** Files claimed when the relay stopped go back in line. */
  async function recoverClaims(): Promise<void> {
    for (const name of await readdir(folder)) {
      if (!name.startsWith(CLAIM_PREFIX)) continue;
      const original = name.slice(CLAIM_PREFIX.length);
      await rename(path.join(folder, name), path.join(folder, original)).catch(() => {});
      deps.logger.warn({ event: 'pickup-recovered', file: original }, `pickup file ${original} was being taken when the relay stopped: it will be taken again`);
    }
  }

  return {
    folder,
    scanOnce,
    async start() {
      mkdirSync(folder, { recursive: true });
      stopped = false;
      await recoverClaims();
      if (!config.pickup.enabled) return;
      try {
        watcher = watch(folder, () => void scanOnce());
        watcher.on('error', () => {}); // the periodic scan still runs
      } catch {
        // fs.watch unsupported here: the periodic scan still runs
      }
      timer = setInterval(() => void scanOnce(), config.pickup.interval);
      timer.unref();
      void scanOnce();
    },
    async stop() {
      stopped = true;
      watcher?.close();
      clearInterval(timer);
      await running;
    },
  };
}
