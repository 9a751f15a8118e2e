/**
 * Client AUTH (PLAIN/LOGIN) against a users file, with guessing slowed down and cut off.
 *
 * Users file: YAML mapping of user name → scrypt hash (`smarthost users hash` makes one), e.g.
 *     scanner-3rd-floor: scrypt$16384$8$1$...$...
 * A malformed hash never verifies. Plain-text passwords are refused when the file is loaded.
 *
 * Guessing (research/smtp-robustness.md §4.2 item 3): after each failure the reply is delayed by
 * failureDelay, doubled per failure of that client address (capped at 30 s); failures are remembered
 * per address across connections for 15 minutes; at maxFailures the connection gets
 * "421 4.7.0" and is closed, and the address stays refused until its failures age out.
 * A success clears the address's record. Passwords are never logged.
 */
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { verifyPassword, isPasswordHash } from '../core/password.ts';
import { SmarthostError } from '../core/errors.ts';
import type { Clock } from '../core/clock.ts';
import type { PolicyDecision } from '../core/types.ts';

/** How long a client address's failures are remembered. */
const FAILURE_MEMORY_MS = 15 * 60_000;
const MAX_DELAY_MS = 30_000;

/** Reads a users file; throws SH_CONFIG_INVALID naming the file and the bad entry. */
export function loadUsers(file: string): Map<string, string> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new SmarthostError('SH_CONFIG_READ', `${file}: the users file could not be read (${(err as Error).message})`, { file, cause: err });
  }
  const data = (YAML.parse(text) ?? {}) as unknown;
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw new SmarthostError('SH_CONFIG_INVALID', `${file}: expected "name: <scrypt hash>" lines`, { file });
  }
  const users = new Map<string, string>();
  for (const [name, hash] of Object.entries(data as Record<string, unknown>)) {
    if (typeof hash !== 'string' || !isPasswordHash(hash)) {
      throw new SmarthostError('SH_CONFIG_INVALID', `${file}: user "${name}" has no scrypt hash (make one with \`smarthost users hash\`)`, { file });
    }
    users.set(name, hash);
  }
  return users;
}

interface FailureRecord {
  count: number;
  lastAt: number;
}

export interface AuthGuardOptions {
  maxFailures: number;
  failureDelay: number;
  clock: Clock;
  /** Test hook: how to wait (default setTimeout). */
  sleep?: (ms: number) => Promise<void>;
}

const LOCKED: PolicyDecision = { verdict: 'defer', code: 421, status: '4.7.0', message: 'Too many failed authentication attempts, closing connection' };
const INVALID: PolicyDecision = { verdict: 'reject', code: 535, status: '5.7.8', message: 'Authentication credentials invalid' };

/** Checks credentials and keeps the per-address failure memory. */
export class AuthGuard {
  private users: Map<string, string>;
  private opts: AuthGuardOptions;
  private failures = new Map<string, FailureRecord>();

  constructor(users: Map<string, string>, opts: AuthGuardOptions) {
    this.users = users;
    this.opts = opts;
  }

  update(users: Map<string, string>, opts: Omit<AuthGuardOptions, 'clock' | 'sleep'>): void {
    this.users = users;
    this.opts = { ...this.opts, ...opts };
  }

  /** Whether the address is refused outright because of earlier failures. */
  isLockedOut(address: string): boolean {
    return this.current(address) >= this.opts.maxFailures;
  }

  /** Verifies; on failure waits the growing delay before answering. */
  async check(address: string, username: string, password: string): Promise<PolicyDecision> {
    if (this.isLockedOut(address)) return LOCKED;
    const hash = this.users.get(username);
    // Verify against a dummy when the user is unknown, so timing does not reveal user names.
    const ok = await verifyPassword(password, hash ?? 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=');
    if (ok && hash) {
      this.failures.delete(address);
      return { verdict: 'accept', reason: `authenticated as ${username}` };
    }
    const count = this.current(address) + 1;
    this.failures.set(address, { count, lastAt: this.opts.clock.now() });
    this.prune();
    const delay = Math.min(MAX_DELAY_MS, this.opts.failureDelay * 2 ** (count - 1));
    await (this.opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms))))(delay);
    return count >= this.opts.maxFailures ? LOCKED : INVALID;
  }

  private current(address: string): number {
    const rec = this.failures.get(address);
    if (!rec) return 0;
    if (this.opts.clock.now() - rec.lastAt > FAILURE_MEMORY_MS) {
      this.failures.delete(address);
      return 0;
    }
    return rec.count;
  }

  /** Bounds memory: forget aged-out addresses. */
  private prune(): void {
    if (this.failures.size < 10_000) return;
    const now = this.opts.clock.now();
    for (const [addr, rec] of this.failures) if (now - rec.lastAt > FAILURE_MEMORY_MS) this.failures.delete(addr);
  }
}
