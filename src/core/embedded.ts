/**
 * Files that live next to the sources in a checkout but inside the program in a single executable
 * (scripts/build-exe.mjs: Node's single-executable applications, docs/install.md).
 *
 * In a checkout or an npm install these return undefined and callers read their files as usual.
 * In a single executable there are no files beside the program: the console's static files and the
 * worker threads' code are SEA assets, listed by the build in the asset "manifest.json"
 * (sea.getAssetKeys() exists only from Node 24.8, and the test-only Windows build uses Node 22).
 */
import path from 'node:path';
import { Worker, type WorkerOptions } from 'node:worker_threads';

interface SeaModule {
  isSea(): boolean;
  getAsset(key: string): ArrayBuffer;
}

// node:sea is loaded only when present (Node >= 20.12), without a static import so that nothing
// changes for the npm package on any supported Node.
const sea = (process.getBuiltinModule?.('node:sea') as SeaModule | undefined);
let manifest: Set<string> | undefined;

export function isSingleExecutable(): boolean {
  return sea?.isSea() === true;
}

function keys(): Set<string> {
  manifest ??= new Set(JSON.parse(Buffer.from(sea!.getAsset('manifest.json')).toString('utf8')) as string[]);
  return manifest;
}

/** The asset's bytes when running as a single executable and it was embedded; otherwise undefined. */
export function embeddedAsset(key: string): Buffer | undefined {
  if (!isSingleExecutable()) return undefined;
  return keys().has(key) ? Buffer.from(sea!.getAsset(key)) : undefined;
}

/** Every embedded key under `prefix` (e.g. "ui/"), or undefined outside a single executable. */
export function embeddedKeys(prefix: string): string[] | undefined {
  if (!isSingleExecutable()) return undefined;
  return [...keys()].filter((k) => k.startsWith(prefix));
}

/**
 * `new Worker(url, options)`, except in a single executable, where the worker's code was bundled
 * by the build into the asset "worker/<name>.js" and runs as an eval worker (it needs only Node's
 * built-in modules: its dependencies are bundled in).
 */
export function startWorker(url: URL, options: WorkerOptions): Worker {
  const code = embeddedAsset(`worker/${path.posix.basename(url.pathname).replace(/\.ts$/, '.js')}`);
  return code ? new Worker(code.toString('utf8'), { ...options, eval: true }) : new Worker(url, options);
}
