/**
 * Runs `smarthost serve` as a real child process for end-to-end tests: writes the YAML config,
 * waits until the SMTP port answers, and can stop it gracefully or kill it with SIGKILL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const NODE = process.execPath;
export const CLI = path.join(ROOT, 'bin/smarthost.js');

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

export async function waitPort(port: number, host = '127.0.0.1', ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, host, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listening on ${host}:${port} within ${ms} ms`);
}

export interface RelayProcess {
  dir: string;
  configFile: string;
  mailroot: string;
  port: number;
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
  kill(): Promise<void>;
}

/** Starts smarthost with the given YAML (without mailroot/listen, which this adds) in a temp folder. */
export async function startRelay(yaml: string, opts: { dir?: string; port?: number; env?: NodeJS.ProcessEnv; waitFor?: number[] } = {}): Promise<RelayProcess> {
  const dir = opts.dir ?? mkdtempSync(path.join(tmpdir(), 'sh-e2e-'));
  const port = opts.port ?? (await freePort());
  const mailroot = path.join(dir, 'mailroot');
  const configFile = path.join(dir, 'smarthost.yaml');
  const hasListen = /^listen:/m.test(yaml);
  // The console is off unless the test configures it: several relays run side by side.
  const hasWeb = /^web:/m.test(yaml);
  const full = [`mailroot: ${mailroot}`, hasListen ? '' : `listen:\n  - address: 127.0.0.1\n    port: ${port}\n    tls: none`, hasWeb ? '' : 'web: { enabled: false }', yaml].join('\n');
  writeFileSync(configFile, full);
  let out = '';
  const child = spawn(NODE, [CLI, 'serve', '--config', configFile], { cwd: dir, env: { ...process.env, SMARTHOST_LOG_FORMAT: 'json', ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => { out += d; });
  const exited = new Promise<void>((_, reject) => child.once('exit', (code) => reject(new Error(`smarthost exited (${code}) before listening:\n${out}`))));
  try {
    // bounded for a relay that never comes up; generous, as a start on two busy CPUs can take long
    await Promise.race([Promise.all([waitPort(port, '127.0.0.1', 60_000), ...(opts.waitFor ?? []).map((p) => waitPort(p, '127.0.0.1', 60_000))]), exited]);
  } catch (e) {
    // a relay that did not come up must not outlive the test (its pipes keep the test process alive)
    child.kill('SIGKILL');
    throw new Error(`${(e as Error).message}\nrelay output:\n${out.slice(-4000)}`, { cause: e });
  } finally {
    exited.catch(() => {});
  }
  const waitExit = (ms: number) => new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const t = setTimeout(() => { child.kill('SIGKILL'); resolve(); }, ms);
    child.once('exit', () => { clearTimeout(t); resolve(); });
  });
  return {
    dir, configFile, mailroot, port, child,
    output: () => out,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await waitExit(15_000);
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await waitExit(5_000);
    },
  };
}
