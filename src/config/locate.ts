/**
 * Where the config file is, for every command alike, so that `serve`, `queue`, `send`, `doctor`
 * and `config show` run from any folder find the same file and so the same mailroot:
 *
 *   1. --config FILE (the command line)
 *   2. SMARTHOST_CONFIG (the environment; a service sets it once)
 *   3. /etc/smarthost/smarthost.yaml — on Windows %ProgramData%\smarthost\smarthost.yaml
 *   4. ./smarthost.yaml in the current folder
 *
 * 1 and 2 are taken as given (a missing file is then an error, never a silent fall-through);
 * 3 and 4 only when the file exists.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { SmarthostError } from '../core/errors.ts';

export interface ConfigSearch {
  platform?: NodeJS.Platform;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** The system-wide file (tests put a temporary stand-in here instead of /etc). */
  systemFile?: string;
  exists?: (file: string) => boolean;
}

export interface FoundConfig {
  /** The config file to load, or undefined when none was found. */
  file?: string;
  /** How it was found. */
  via: 'option' | 'SMARTHOST_CONFIG' | 'system' | 'current folder' | 'none';
  /** Every place looked at, in order (for "no config found" messages). */
  tried: string[];
}

/** The system-wide config file of this platform. */
export function systemConfigFile(platform: NodeJS.Platform = process.platform, env: NodeJS.ProcessEnv = process.env): string {
  if (platform === 'win32') return path.win32.join(env.ProgramData ?? env.PROGRAMDATA ?? 'C:\\ProgramData', 'smarthost', 'smarthost.yaml');
  return '/etc/smarthost/smarthost.yaml';
}

export function findConfig(explicit?: string, search: ConfigSearch = {}): FoundConfig {
  const env = search.env ?? process.env;
  const exists = search.exists ?? existsSync;
  if (explicit) return { file: explicit, via: 'option', tried: [explicit] };
  if (env.SMARTHOST_CONFIG) return { file: env.SMARTHOST_CONFIG, via: 'SMARTHOST_CONFIG', tried: [env.SMARTHOST_CONFIG] };
  const system = search.systemFile ?? systemConfigFile(search.platform, env);
  const local = path.resolve(search.cwd ?? process.cwd(), 'smarthost.yaml');
  const tried = ['SMARTHOST_CONFIG (not set)', system, local];
  if (exists(system)) return { file: system, via: 'system', tried };
  if (exists(local)) return { file: local, via: 'current folder', tried };
  return { via: 'none', tried };
}

/** The "no config" answer of commands that need one: what was tried and how to give one. */
export function noConfigError(found: FoundConfig): SmarthostError {
  return new SmarthostError('SH_CONFIG_NOT_FOUND', [
    'no config file found; looked for:',
    ...found.tried.map((t) => `  ${t}`),
    'Give one with --config FILE or SMARTHOST_CONFIG=FILE, or create one of the files above (`smarthost config sample` prints a commented one).',
  ].join('\n'));
}

/** The config file a command must have: found, or a SH_CONFIG_NOT_FOUND error listing the paths tried. */
export function requireConfig(explicit?: string, search?: ConfigSearch): string {
  const found = findConfig(explicit, search);
  if (!found.file) throw noConfigError(found);
  return found.file;
}
