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

/**
 * A duration in words for people (NDRs, .BDR, logs): "2 days", "12 hours", "1 hour", "30 minutes",
 * "90 minutes", "45 seconds": the largest unit that states it exactly (rounded to minutes, or to
 * seconds under a minute), so a short expiration never reads "within 0 hours".
 */
export function wordDuration(ms: number): string {
  const plural = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'}`;
  if (ms < 60_000) return plural(Math.max(0, Math.round(ms / 1000)), 'second');
  const minutes = Math.round(ms / 60_000);
  if (minutes % 1440 === 0 && minutes >= 2880) return plural(minutes / 1440, 'day');
  if (minutes % 60 === 0) return plural(minutes / 60, 'hour');
  return plural(minutes, 'minute');
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
