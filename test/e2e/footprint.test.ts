/**
 * The relay's footprint (issue 14, point 8): a plain relay holds 1,000 idle client connections in
 * at most 150 MB RSS, and never loads the code of what it was not configured to use (the console's
 * Fastify, PostgreSQL's pg, Microsoft's MSAL, the diagnostics' mailauth and mailparser).
 *
 * Which modules a process loaded is read from inside it: a preload (NODE_OPTIONS --import, which
 * `serve` keeps across its re-exec) records every module URL and writes them, with RSS, to a file
 * when sent SIGUSR2. The same check on a relay with the console and PostgreSQL history configured
 * must find Fastify and pg, so the check itself can fail.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, startRelay, type RelayProcess } from '../helpers/relay.ts';

const PROBE = `import { registerHooks } from 'node:module';
import { writeFileSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';
if (isMainThread) {
  const urls = new Set();
  registerHooks({ load(url, context, next) { urls.add(url); return next(url, context); } });
  process.on('SIGUSR2', () => writeFileSync(process.env.FOOTPRINT_OUT + '.tmp', JSON.stringify({ urls: [...urls] })) || writeFileSync(process.env.FOOTPRINT_OUT, 'done'));
}
`;

/** Packages a plain relay must not load, by the path of their files. */
const UNUSED = {
  console: /\/node_modules\/(fastify|@fastify\/[^/]+)\//,
  postgres: /\/node_modules\/(pg|pg-pool|pg-protocol)\//,
  msal: /\/node_modules\/@azure\/msal-(node|common)\//,
  diagnostics: /\/node_modules\/(mailauth|mailparser)\//,
};

/** RSS and PSS (MB) of the relay's process (its worker threads included). */
function memory(pid: number): { rss: number; pss: number } {
  const t = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  return { rss: Number(/^Rss:\s+(\d+)/m.exec(t)![1]) / 1024, pss: Number(/^Pss:\s+(\d+)/m.exec(t)![1]) / 1024 };
}

/** The module URLs the relay's main thread loaded, asked through the probe. */
async function loadedModules(relay: RelayProcess, out: string): Promise<string[]> {
  relay.child.kill('SIGUSR2');
  const end = Date.now() + 30_000;
  while (!existsSync(out)) {
    if (Date.now() > end) throw new Error(`the relay did not answer the module probe:\n${relay.output().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return (JSON.parse(readFileSync(`${out}.tmp`, 'utf8')) as { urls: string[] }).urls;
}

function probeEnv(dir: string, name: string): { env: NodeJS.ProcessEnv; out: string } {
  const probe = path.join(dir, 'probe.mjs');
  writeFileSync(probe, PROBE);
  const out = path.join(dir, `${name}.json`);
  return { env: { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${probe}`.trim(), FOOTPRINT_OUT: out }, out };
}

/** One client that has read the greeting and had its EHLO answered, then stays silent. */
function idleClient(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    let ehlo = false;
    s.on('error', reject);
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (!ehlo && /^220 .*\r\n/m.test(got)) {
        ehlo = true;
        got = '';
        s.write('EHLO idle.footprint.test\r\n');
      } else if (ehlo && /^250 .*\r\n/m.test(got)) {
        s.removeAllListeners('data');
        resolve(s);
      } else if (/^[45]\d\d .*\r\n/m.test(got)) {
        s.destroy();
        reject(new Error(`an idle client was refused: ${got.trim()}`));
      }
    });
  });
}

const PLAIN = `upstreams:
  - name: isp
    url: smtp://127.0.0.1:9
delivery:
  thread: false
history:
  store: off
pickup:
  enabled: false
limits:
  maxConnections: 1100
  maxConnectionsPerClient: 1100
log:
  level: warn
`;

test('a plain relay holds 1,000 idle connections in at most 150 MB RSS and loads no console, PostgreSQL, MSAL or diagnostics code', { timeout: 240_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sh-footprint-'));
  // A first start fills the compile cache (bin/smarthost.js) as any earlier run would have: the
  // figure is the relay's, not that of Node stripping the types of a file changed since.
  await (await startRelay(PLAIN, { dir: mkdtempSync(path.join(tmpdir(), 'sh-footprint-warm-')) })).stop();
  const { env, out } = probeEnv(dir, 'plain');
  const relay = await startRelay(PLAIN, { dir, env });
  const sockets: net.Socket[] = [];
  try {
    const idle = memory(relay.child.pid!);
    for (let i = 0; i < 1000; i += 50) sockets.push(...(await Promise.all(Array.from({ length: 50 }, () => idleClient(relay.port)))));
    const held = memory(relay.child.pid!);
    console.log(`smarthost serve (plain relay): idle RSS ${idle.rss.toFixed(1)} MB, PSS ${idle.pss.toFixed(1)} MB; with ${sockets.length} idle connections RSS ${held.rss.toFixed(1)} MB, PSS ${held.pss.toFixed(1)} MB`);
    assert.equal(sockets.length, 1000);
    assert.ok(held.rss <= 150, `RSS with 1,000 idle connections is ${held.rss.toFixed(1)} MB, over 150 MB`);

    const urls = await loadedModules(relay, out);
    // the probe saw the relay's own code: an empty list cannot pass
    assert.ok(urls.some((u) => /\/node_modules\/smtp-server\//.test(u)), 'the probe did not see the SMTP server load');
    for (const [what, pattern] of Object.entries(UNUSED)) {
      const found = urls.filter((u) => pattern.test(u));
      assert.deepEqual(found.slice(0, 3), [], `${what} code was loaded by a relay that does not use it`);
    }
  } finally {
    for (const s of sockets) s.destroy();
    await relay.stop();
  }
});

test('the module probe finds the console and PostgreSQL code when they are configured', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sh-footprint-'));
  const { env, out } = probeEnv(dir, 'full');
  const webPort = await freePort();
  // PostgreSQL history on a closed port: pg is loaded for the first write, which fails and is retried
  const relay = await startRelay(`web:\n  enabled: true\n  port: ${webPort}\nhistory:\n  store: postgres\n  postgresUrl: postgres://smarthost@127.0.0.1:9/none\npickup:\n  enabled: false\n`, { dir, env, waitFor: [webPort] });
  try {
    const end = Date.now() + 60_000;
    let urls = await loadedModules(relay, out);
    // pg is imported when history first writes (the start-up catch-up with the spool): ask again until it has
    while (!urls.some((u) => UNUSED.postgres.test(u)) && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 200));
      rmSync(out, { force: true });
      urls = await loadedModules(relay, out);
    }
    assert.ok(urls.some((u) => UNUSED.console.test(u)), 'Fastify not found although the console is on');
    assert.ok(urls.some((u) => UNUSED.postgres.test(u)), 'pg not found although history is in PostgreSQL');
  } finally {
    await relay.stop();
  }
});
