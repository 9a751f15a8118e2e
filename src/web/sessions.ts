/**
 * Console sessions: an opaque random id in an HttpOnly, SameSite=Strict cookie (Secure when
 * web.secureCookies), mapped in memory to the user and a per-session CSRF token.
 *
 * Sessions end after 30 minutes idle or 12 hours in all, and on logout; a relay restart ends them
 * all (the admin logs in again). The table is bounded: past 1000 sessions the oldest goes.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../core/clock.ts';

export interface Session {
  id: string;
  user: string;
  csrf: string;
  createdAt: number;
  seenAt: number;
}

export const SESSION_COOKIE = 'smarthost_session';
const IDLE_MS = 30 * 60_000;
const MAX_AGE_MS = 12 * 3_600_000;
const MAX_SESSIONS = 1000;

export interface SessionTable {
  create(user: string): Session;
  get(id: string | undefined): Session | undefined;
  destroy(id: string | undefined): void;
}

export function createSessionTable(clock: Clock): SessionTable {
  const sessions = new Map<string, Session>();
  return {
    create(user) {
      if (sessions.size >= MAX_SESSIONS) sessions.delete(sessions.keys().next().value!);
      const now = clock.now();
      const s: Session = { id: randomBytes(32).toString('base64url'), user, csrf: randomBytes(32).toString('base64url'), createdAt: now, seenAt: now };
      sessions.set(s.id, s);
      return s;
    },
    get(id) {
      if (!id) return undefined;
      const s = sessions.get(id);
      if (!s) return undefined;
      const now = clock.now();
      if (now - s.seenAt > IDLE_MS || now - s.createdAt > MAX_AGE_MS) {
        sessions.delete(id);
        return undefined;
      }
      s.seenAt = now;
      return s;
    },
    destroy(id) {
      if (id) sessions.delete(id);
    },
  };
}

/** Constant-time comparison of two tokens (false when lengths differ). */
export function sameToken(a: string | undefined, b: string): boolean {
  if (typeof a !== 'string') return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
