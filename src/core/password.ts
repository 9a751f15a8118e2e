/**
 * Password hashing for the console's admin password and SMTP AUTH users files.
 *
 * Format (one string, safe in YAML): `scrypt$N$r$p$saltB64$hashB64`, e.g.
 *   scrypt$16384$8$1$3q2+7w...$Zm9v...
 * hashPassword() picks a fresh 16-byte salt; verifyPassword() recomputes with the stored
 * parameters and compares in constant time. A malformed hash never verifies (returns false,
 * never throws), so a typo in the config locks the door rather than opening it.
 */
import { randomBytes, scrypt as scryptCb, timingSafeEqual } from 'node:crypto';

const DEFAULTS = { N: 16384, r: 8, p: 1, keyLength: 32 };

function scrypt(password: string, salt: Buffer, keyLength: number, N: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // maxmem must cover 128 * N * r bytes, with headroom.
    scryptCb(password, salt, keyLength, { N, r, p, maxmem: 256 * N * r + 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** Hashes a password into the `scrypt$N$r$p$salt$hash` format. */
export async function hashPassword(password: string, params: { N?: number; r?: number; p?: number } = {}): Promise<string> {
  const N = params.N ?? DEFAULTS.N;
  const r = params.r ?? DEFAULTS.r;
  const p = params.p ?? DEFAULTS.p;
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, DEFAULTS.keyLength, N, r, p);
  return `scrypt$${N}$${r}$${p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

/** Whether the string looks like a hash this module made (to refuse plain-text passwords in config). */
export function isPasswordHash(value: string): boolean {
  return /^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/.test(value);
}

/** True when password matches the stored hash; false for a wrong password or a malformed hash. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  if (!isPasswordHash(stored)) return false;
  const [, n, r, p, saltB64, hashB64] = stored.split('$');
  const N = Number(n);
  const R = Number(r);
  const P = Number(p);
  // Refuse absurd parameters rather than let a config value exhaust memory.
  if (!(N >= 2 && N <= 1 << 20 && (N & (N - 1)) === 0 && R >= 1 && R <= 32 && P >= 1 && P <= 16)) return false;
  const expected = Buffer.from(hashB64, 'base64');
  if (expected.length < 16) return false;
  try {
    const actual = await scrypt(password, Buffer.from(saltB64, 'base64'), expected.length, N, R, P);
    return timingSafeEqual(actual, expected);
  } catch {
    return false;
  }
}
