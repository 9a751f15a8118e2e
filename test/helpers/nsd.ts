/**
 * Runs Debian's NSD (a real authoritative DNS server) on 127.0.0.1 with zone files written by the
 * test, so tests can check the DNS client against a server that is not ours.
 * Guarantees: the process and its temp directory are removed by stop(); start() waits until the
 * server answers (bounded: ~5 s) and throws with NSD's log when it does not.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import net from 'node:net';
import dgram from 'node:dgram';
import { createDnsClient } from '../../src/diagnostics/dns/client.ts';

export interface NsdServer { host: string; port: number; stop(): Promise<void> }

/** A port that is free for both UDP and TCP right now (small race with NSD binding it: accepted). */
async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const u = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => u.bind(0, '127.0.0.1', () => resolve()));
    const port = u.address().port;
    const t = net.createServer();
    const ok = await new Promise<boolean>((resolve) => {
      t.once('error', () => resolve(false));
      t.listen(port, '127.0.0.1', () => resolve(true));
    });
    await new Promise<void>((resolve) => u.close(() => resolve()));
    if (ok) await new Promise<void>((resolve) => t.close(() => resolve()));
    if (ok) return port;
  }
  throw new Error('no free port');
}

/** zones: origin → zone file text. */
export async function startNsd(zones: Record<string, string>): Promise<NsdServer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'smarthost-nsd-'));
  const port = await freePort();
  const zoneBlocks = Object.entries(zones).map(([origin, text], i) => {
    writeFileSync(path.join(dir, `z${i}.zone`), text);
    return `zone:\n  name: "${origin}"\n  zonefile: "${path.join(dir, `z${i}.zone`)}"\n`;
  });
  writeFileSync(path.join(dir, 'nsd.conf'), `server:
  ip-address: 127.0.0.1
  port: ${port}
  username: ""
  chroot: ""
  zonesdir: "${dir}"
  pidfile: "${dir}/nsd.pid"
  database: ""
  zonelistfile: "${dir}/zone.list"
  xfrdfile: "${dir}/xfrd.state"
  xfrdir: "${dir}"
  logfile: "${dir}/nsd.log"
  server-count: 1
  verbosity: 1
remote-control:
  control-enable: no
${zoneBlocks.join('')}`);
  const child: ChildProcess = spawn('nsd', ['-d', '-c', path.join(dir, 'nsd.conf')], { stdio: 'ignore' });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const client = createDnsClient({ servers: [{ host: '127.0.0.1', port }], timeoutMs: 200, retries: 0 });
  const origin = Object.keys(zones)[0];
  for (let i = 0; i < 25; i++) {
    const a = await client.query(origin, 'SOA');
    if (a.rcode === 'NOERROR') return { host: '127.0.0.1', port, stop };
    await new Promise((r) => setTimeout(r, 200));
  }
  let log = '';
  try { log = readFileSync(path.join(dir, 'nsd.log'), 'utf8'); } catch { /* no log written */ }
  await stop();
  throw new Error(`nsd did not start answering on 127.0.0.1:${port}: ${log}`);
}
