/**
 * Where the delivery manager keeps each upstream's daily recipient counts between runs
 * (mailroot/pacing.json), so that a restart or a reload does not hand Microsoft 365 a fresh
 * 10,000-recipient budget the mailbox no longer has (pacing.ts).
 *
 * The file is small (per upstream at most one entry per minute of the last day) and rewritten
 * atomically (write beside, rename). It is advisory: a missing or unreadable file means "no counts
 * yet" with a warning, never a stopped relay; a crash loses at most the last SAVE_INTERVAL_MS of counts.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Logger } from '../core/logger.ts';

export const SAVE_INTERVAL_MS = 10_000;

export type PacingCounts = Record<string, unknown>;

export function loadPacing(file: string, logger: Logger): PacingCounts {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') logger.warn({ file, err: (e as Error).message }, 'could not read the saved upstream pacing counts: starting from zero');
    return {};
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as PacingCounts;
  } catch {
    /* reported below */
  }
  logger.warn({ file }, 'the saved upstream pacing counts are not valid JSON: starting from zero');
  return {};
}

export function savePacing(file: string, counts: Record<string, unknown>, logger: Logger): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, `${JSON.stringify(counts)}\n`, { mode: 0o640 });
    renameSync(tmp, file);
  } catch (e) {
    logger.warn({ file, err: (e as Error).message }, 'could not save the upstream pacing counts');
  }
}
