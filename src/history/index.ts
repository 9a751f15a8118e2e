/**
 * openHistory(): the message history a relay records into and the console searches.
 *
 * Picks the backend from config.history.store: 'sqlite' (mailroot/history.sqlite, the default),
 * 'postgres' (config.history.postgresUrl, shared by several relays) or 'off'. Opening never
 * fails and never waits: the store is created on the first write or query, so a PostgreSQL
 * server that is down at start delays nothing — writes are kept and retried (see recorder.ts),
 * and queries reject with a plain-words error until it is back. Retention runs hourly.
 */
import path from 'node:path';
import type { Clock } from '../core/clock.ts';
import type { Logger } from '../core/logger.ts';
import type { HistoryConfig } from '../config/sections/misc.ts';
import { resolveSecret } from '../config/secret.ts';
import { createRecorder, type RecorderOptions } from './recorder.ts';
import { openSqliteBackend } from './sqlite.ts';
import { openPostgresBackend } from './postgres.ts';
import { getMessage, knownIds, purgeBefore, recentErrors, searchMessages, statsSince, statusFromEvents } from './queries.ts';
import type { HistoryBackend } from './sql.ts';
import type { HistoryStore } from './types.ts';

export type { HistoryStore, HistoryQuery, HistoryHealth, MessageDetail, MessageSummary, SearchResult, StatsBucket, TimelineEntry, RecentError } from './types.ts';

export interface HistoryDeps {
  logger: Logger;
  clock: Clock;
  /** A backend to use instead of the configured one (tests). */
  backend?: HistoryBackend;
  recorder?: RecorderOptions;
  /** How often retention runs; default one hour. 0 turns the timer off. */
  purgeEveryMs?: number;
}

/** A bucket size giving about 48 buckets over the span, rounded to whole minutes. */
function defaultBucket(spanMs: number): number {
  return Math.max(60_000, Math.ceil(spanMs / 48 / 60_000) * 60_000);
}

function chooseBackend(config: { history: HistoryConfig; mailrootPath: string }): HistoryBackend | undefined {
  const h = config.history;
  if (h.store === 'off') return undefined;
  if (h.store === 'postgres') {
    if (!h.postgresUrl) throw new Error('history.store is postgres but history.postgresUrl is not set');
    return openPostgresBackend(resolveSecret(h.postgresUrl));
  }
  return openSqliteBackend(path.join(config.mailrootPath, 'history.sqlite'));
}

export function openHistory(config: { history: HistoryConfig; mailrootPath: string }, deps: HistoryDeps): HistoryStore {
  const backend = deps.backend ?? chooseBackend(config);
  if (!backend) return offStore();
  const recorder = createRecorder(backend, deps, deps.recorder);
  const ready = async (): Promise<HistoryBackend> => {
    try {
      await backend.init();
    } catch (err) {
      throw new Error(`the history store (${backend.kind}) is unavailable: ${(err as Error).message}`, { cause: err });
    }
    return backend;
  };
  const retention = config.history.retention;
  const store: HistoryStore = {
    record: (event) => recorder.record(event),
    search: async (q) => searchMessages(await ready(), q),
    get: async (id) => getMessage(await ready(), id),
    stats: async (since, bucketMs) => {
      const now = deps.clock.now();
      return statsSince(await ready(), since.getTime(), now + 1, bucketMs ?? defaultBucket(now - since.getTime()));
    },
    recentErrors: async (limit = 10) => recentErrors(await ready(), limit),
    purge: async () => purgeBefore(await ready(), deps.clock.now() - retention),
    reconcile: async (messages) => {
      const db = await ready();
      const known = await knownIds(db, messages.map((m) => m.id));
      const missing = messages.filter((m) => !known.has(m.id));
      if (!missing.length) return 0;
      for (const m of missing) recorder.record({ type: 'accepted', id: m.id, envelope: m.envelope, at: m.envelope.receivedAt });
      await recorder.flush();
      // Attempts or states recorded before the catch-up decide the status, not the new row's 'queued'.
      await statusFromEvents(db, missing.map((m) => m.id));
      deps.logger.info({ added: missing.length }, 'history caught up with the spool (messages accepted just before a restart)');
      return missing.length;
    },
    flush: () => recorder.flush(),
    health: () => recorder.health(),
    close: async () => {
      clearInterval(purgeTimer);
      await recorder.close();
      await backend.close();
    },
  };
  const every = deps.purgeEveryMs ?? 3_600_000;
  const purgeTimer = setInterval(() => {
    store.purge().then(
      (n) => n && deps.logger.info({ removed: n }, 'history retention: old messages removed'),
      (err: Error) => deps.logger.warn({ err: err.message }, 'history retention failed; will try again'),
    );
  }, every || 3_600_000);
  purgeTimer.unref();
  if (!every) clearInterval(purgeTimer);
  return store;
}

/** history.store: off — records nothing, finds nothing, and says so. */
function offStore(): HistoryStore {
  return {
    record: () => {},
    search: async () => ({ messages: [] }),
    get: async () => undefined,
    stats: async () => [],
    recentErrors: async () => [],
    purge: async () => 0,
    reconcile: async () => 0,
    flush: async () => {},
    health: () => ({ backend: 'off', ok: true, pending: 0, missed: 0, written: 0, summary: 'history is turned off (history.store: off)' }),
    close: async () => {},
  };
}
