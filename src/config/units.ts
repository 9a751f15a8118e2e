/** Human units in the config file: durations ("90s", "15m", "12h", "2d") and sizes ("35MB", "512KB"). */
import { z } from 'zod';

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/i;
const SIZE = /^(\d+(?:\.\d+)?)\s*(b|kb|k|mb|m|gb|g)?$/i;
const MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const BYTES: Record<string, number> = { b: 1, k: 1024, kb: 1024, m: 1024 ** 2, mb: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3 };

/** Parses "15m" → 900000 ms. A bare number is taken as seconds. */
export function parseDuration(v: string | number): number | undefined {
  if (typeof v === 'number') return v >= 0 ? v * 1000 : undefined;
  const m = DURATION.exec(v.trim());
  return m ? Math.round(Number(m[1]) * MS[m[2].toLowerCase()]) : undefined;
}

/** Parses "35MB" → 36700160 bytes. A bare number is bytes. */
export function parseSize(v: string | number): number | undefined {
  if (typeof v === 'number') return v >= 0 ? Math.floor(v) : undefined;
  const m = SIZE.exec(v.trim());
  return m ? Math.floor(Number(m[1]) * BYTES[(m[2] ?? 'b').toLowerCase()]) : undefined;
}

/** A duration key: accepts "15m" or seconds; yields milliseconds. */
export const duration = () =>
  z.union([z.string(), z.number()]).transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected a duration such as "90s", "15m", "12h" or "2d", got ${JSON.stringify(v)}` });
      return z.NEVER;
    }
    return ms;
  });

/** A size key: accepts "35MB", "512KB" or bytes; yields bytes. */
export const size = () =>
  z.union([z.string(), z.number()]).transform((v, ctx) => {
    const n = parseSize(v);
    if (n === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected a size such as "35MB", "512KB" or a number of bytes, got ${JSON.stringify(v)}` });
      return z.NEVER;
    }
    return n;
  });
