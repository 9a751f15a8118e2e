/**
 * Two things most end-to-end tests need: run a real command (swaks, the CLI) and collect its exit
 * code and output, and wait for a condition with a bound and a reason when it is not reached.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';

/** Runs `cmd` with `args`; never rejects: exit code (1 when killed or not started) and stdout + stderr. */
export function runCommand(cmd: string, args: string[], timeoutMs = 60_000): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: `${stdout}${stderr}` }));
  });
}

/** Polls `check` every 100 ms until it holds; after `ms`, fails naming `what` and what `detail` adds (a log tail). */
export async function waitUntil(what: string, check: () => boolean, ms = 30_000, detail?: () => string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out waiting for ${what}${detail ? `; ${detail()}` : ''}`);
}
