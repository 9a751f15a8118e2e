/**
 * How the service manager should start this smarthost: the single executable by itself, or the
 * Node.js binary with the smarthost script (a global npm install or a checkout). Absolute paths
 * only: a service manager has no PATH worth trusting and no current folder.
 */
import { realpathSync } from 'node:fs';
import path from 'node:path';

export interface Launcher {
  /** Absolute path of the program to run. */
  executable: string;
  /** Arguments before smarthost's own (the script, for Node). */
  prefix: string[];
  /** True for a single executable (Node's SEA): no script, no Node.js needed. */
  sea: boolean;
}

/** Whether this process is a single executable application. */
export async function isSea(): Promise<boolean> {
  try {
    const sea = (await import('node:sea')) as { isSea?: () => boolean };
    return sea.isSea?.() ?? false;
  } catch {
    return false; // Node without node:sea: certainly not one
  }
}

/** The launcher of the running process, resolved through symlinks (/usr/bin/smarthost → the package). */
export async function currentLauncher(): Promise<Launcher> {
  const executable = realpathSync(process.execPath);
  if (await isSea()) return { executable, prefix: [], sea: true };
  const script = process.argv[1] ? realpathSync(path.resolve(process.argv[1])) : '';
  return { executable, prefix: script ? [script] : [], sea: false };
}
