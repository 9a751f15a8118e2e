/**
 * How the service manager should start this smarthost: the single executable by itself, or the
 * Node.js binary with the smarthost script (a global npm install or a checkout). Absolute paths
 * only: a service manager has no PATH worth trusting and no current folder.
 */
import { realpathSync } from 'node:fs';
import path from 'node:path';
import { embeddedAsset, isSingleExecutable } from '../core/embedded.ts';

export interface Launcher {
  /** Absolute path of the program to run. */
  executable: string;
  /** Arguments before smarthost's own (the script, for Node). */
  prefix: string[];
  /** True for a single executable (Node's SEA): no script, no Node.js needed. */
  sea: boolean;
}

/** A file embedded in the single executable (scripts/build-exe.mjs assets), or undefined. */
export function seaAsset(name: string): Buffer | undefined {
  return embeddedAsset(name);
}

/** The launcher of the running process, resolved through symlinks (/usr/bin/smarthost → the package). */
export function currentLauncher(): Launcher {
  const executable = realpathSync(process.execPath);
  if (isSingleExecutable()) return { executable, prefix: [], sea: true };
  const script = process.argv[1] ? realpathSync(path.resolve(process.argv[1])) : '';
  return { executable, prefix: script ? [script] : [], sea: false };
}
