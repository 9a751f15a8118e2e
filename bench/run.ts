/**
 * npm run bench — relay throughput and memory, smarthost side by side with Postfix.
 *
 *   smtp-source ──SMTP──▶ relay under test ──SMTP──▶ smtp-sink (counts messages)
 *
 * For each message size and concurrency: accept msg/s (until smtp-source has had 250 for every
 * message, one message per connection), end-to-end msg/s (until the sink has counted them all) and
 * the relay's peak RSS (all its processes). Postfix runs the same load as a private instance
 * configured as a relay (fsync before 250, like smarthost). All peers run at once and take turns
 * point by point, so each ratio compares runs made back to back. Loopback only; every run is bounded
 * in messages and time. Needs Debian's postfix package (smtp-source, smtp-sink, postfix).
 *
 *   node bench/run.ts [--sizes 1024,102400] [--conc 1,10,50] [--messages 2000] [--runs 3]
 *                     [--peers smarthost,postfix,smarthost-tuned,smarthost-routes20,smarthost-nohistory,baseline]
 *                     [--baseline DIR [--baseline-variant defaults|tuned]] [--json FILE]
 *   node bench/run.ts --mode idle [--idle 1000] [--peers smarthost,postfix,smarthost-nohistory,baseline] [--baseline DIR]
 *
 * `--mode idle` measures memory instead (idleMain below): each peer's RSS and PSS (all its
 * processes) idle, with N client connections held open after EHLO, and after they are closed.
 *
 * `smarthost` runs on the defaults a user gets (only the listener's connection limits raised, as for
 * Postfix); `smarthost-tuned` raises the upstream's connections and delivery concurrency;
 * `smarthost-routes20` adds 20 routing rules that all miss.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { postfixMaster, processTree as tree, startPostfix, stopPostfix, writePostfixConfig, type PostfixInstance } from './postfix.ts';

const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1024,102400' },
    conc: { type: 'string', default: '1,10,50' },
    messages: { type: 'string', default: '2000' },
    runs: { type: 'string', default: '3' },
    peers: { type: 'string', default: 'smarthost,postfix' },
    json: { type: 'string' },
    baseline: { type: 'string' },
    'baseline-variant': { type: 'string', default: 'defaults' },
    timeout: { type: 'string', default: '180' },
    mode: { type: 'string', default: 'throughput' },
    idle: { type: 'string', default: '1000' },
  },
});
const SIZES = args.sizes!.split(',').map(Number);
const CONCS = args.conc!.split(',').map(Number);
const N = Math.min(Number(args.messages), 20_000);
const RUNS = Math.min(Number(args.runs), 5);
const RUN_TIMEOUT_MS = Number(args.timeout) * 1000;
const ROOT = path.resolve(import.meta.dirname, '..');
const HOST = '127.0.0.1';
const IDLE = Math.min(Number(args.idle), 5000);
/** Connections each peer's listener takes (the idle mode holds IDLE of them from one address). */
const MAX_CONNECTIONS = args.mode === 'idle' ? Math.max(1000, IDLE + 100) : 1000;

interface Peer {
  name: string;
  start(port: number, sink: number, dir: string): Promise<void>;
  stop(): Promise<void>;
  /** PIDs whose RSS counts as the relay's. */
  pids(): number[];
  /** The process whose main thread is the relay's event loop (smarthost only). */
  loopPid?(): number | undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, HOST, () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

async function waitPort(port: number, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, HOST, () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`nothing listening on ${HOST}:${port} after ${ms} ms`);
}

/** Summed RSS and PSS (kB) of the processes: PSS is the fair figure for multi-process relays like Postfix. */
function memKb(pids: number[]): { rss: number; pss: number } {
  let rss = 0;
  let pss = 0;
  for (const p of pids) {
    try {
      const t = readFileSync(`/proc/${p}/smaps_rollup`, 'utf8');
      rss += Number(/^Rss:\s+(\d+)/m.exec(t)?.[1] ?? 0);
      pss += Number(/^Pss:\s+(\d+)/m.exec(t)?.[1] ?? 0);
    } catch { /* gone */ }
  }
  return { rss, pss };
}

/**
 * CPU seconds used by the processes (user + system, plus reaped children's), from /proc. Robust
 * where throughput is not: on a shared machine, another job's load lowers msg/s but not the relay's
 * own CPU per message. Children that die between two samples count through their parent's cutime.
 */
function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const p of pids) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // fields 14-17 of stat (utime, stime, cutime, cstime) are 11-14 after the command name
      ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    } catch { /* gone */ }
  }
  return ticks / 100; // USER_HZ is 100 on Linux
}

/** CPU seconds of one process's main thread only (for smarthost: its event loop, without workers). */
function mainThreadSeconds(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

/**
 * How a smarthost peer is configured. `defaults`: only what Postfix also gets raised (the listener's
 * connection limits), everything else as a user gets it. `tuned`: the upstream's connections, messages
 * per connection and delivery concurrency raised (how the benchmark ran before issue 14). `routes20`:
 * the defaults plus 20 routing rules that all miss before the default route (issue 15: routing must
 * not cost the accept path).
 */
type SmarthostVariant = 'defaults' | 'tuned' | 'routes20';

function smarthostPeer(name: string, history: boolean, variant: SmarthostVariant = 'defaults', root = ROOT): Peer {
  let child: ChildProcess | undefined;
  return {
    name,
    async start(port, sink, dir) {
      const cfg = path.join(dir, 'smarthost.yaml');
      const lines = [
        `mailroot: ${path.join(dir, 'mailroot')}`,
        'listen:', `  - address: ${HOST}`, `    port: ${port}`, '    tls: none',
        'upstreams:', `  - name: sink`, `    url: smtp://${HOST}:${sink}`,
        ...(variant === 'tuned' ? ['    maxConnections: 10', '    maxMessagesPerConnection: 100', 'delivery:', '  concurrency: 20', '  scanInterval: 1s'] : []),
        'pickup:', '  enabled: false',
        'web:', '  enabled: false',
        'history:', `  store: ${history ? 'sqlite' : 'off'}`,
        'limits:', `  maxConnectionsPerClient: ${Math.max(500, MAX_CONNECTIONS - 100)}`, `  maxConnections: ${MAX_CONNECTIONS}`,
        'log:', '  level: warn', '  format: json',
      ];
      if (variant === 'routes20') {
        // Every kind of condition, none matching the bench's sender/recipient/client, so each message
        // is checked against all 20 rules before it takes the default route.
        lines.push('routes:', '  - name: main', '    upstreams: [sink]', '  - name: other', '    upstreams: [sink]', 'routing:', '  rules:');
        for (let i = 0; i < 20; i++) {
          const cond = [
            `senderDomains: [tenant${i}.example]`, `senders: [scanner${i}@tenant${i}.example]`, `fromDomains: [from${i}.example]`,
            `recipientDomains: [rcpt${i}.example]`, `clients: [10.${i}.0.0/16]`,
          ][i % 5];
          lines.push(`    - { ${cond}, route: other }`);
        }
        lines.push('  default: main');
      }
      writeFileSync(cfg, lines.join('\n'));
      child = spawn(path.join(ROOT, 'node_modules/.bin/node'), [path.join(root, 'bin/smarthost.js'), 'serve', '--config', cfg], { stdio: ['ignore', 'ignore', 'inherit'] });
      await waitPort(port);
    },
    async stop() {
      if (!child || child.exitCode !== null) return;
      child.kill('SIGTERM');
      await Promise.race([new Promise((r) => child!.once('exit', r)), sleep(10_000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
    pids: () => (child?.pid ? tree(child.pid) : []),
    loopPid: () => child?.pid,
  };
}

function postfixPeer(): Peer {
  let instance: PostfixInstance | undefined;
  let master = 0;
  return {
    name: 'postfix',
    async start(port, sink, dir) {
      instance = writePostfixConfig(dir, port, sink, [], MAX_CONNECTIONS + 100);
      startPostfix(instance);
      await waitPort(port);
      master = postfixMaster(instance);
    },
    async stop() {
      if (instance) stopPostfix(instance);
      await sleep(500);
    },
    pids: () => (master ? tree(master) : []),
  };
}

function startSink(port: number): { proc: ChildProcess; count: () => number } {
  let n = 0;
  let tail = '';
  const a = ['-c', '-m', '1024'];
  if (process.getuid?.() === 0) a.unshift('-u', 'nobody');
  const proc = spawn('smtp-sink', [...a, `${HOST}:${port}`, '1024'], { stdio: ['ignore', 'pipe', 'ignore'] });
  proc.stdout!.on('data', (d: Buffer) => {
    tail = (tail + d.toString()).slice(-256);
    const all = [...tail.matchAll(/mesg=(\d+)/g)];
    if (all.length) n = Number(all[all.length - 1][1]);
  });
  return { proc, count: () => n };
}

interface Row { run?: number; peer: string; size: number; conc: number; n: number; accept: number; e2e: number | null; rssMb: number; pssMb: number; cpuMsPerMsg: number; loopMsPerMsg: number | null; delivered: number }

async function runPoint(peer: Peer, port: number, sink: ReturnType<typeof startSink>, size: number, conc: number): Promise<Row> {
  const base = sink.count();
  const peak = { rss: 0, pss: 0 };
  const sampler = setInterval(() => {
    const m = memKb(peer.pids());
    peak.rss = Math.max(peak.rss, m.rss);
    peak.pss = Math.max(peak.pss, m.pss);
  }, 200);
  const cpu0 = cpuSeconds(peer.pids());
  const loop0 = mainThreadSeconds(peer.loopPid?.());
  const t0 = performance.now();
  const src = spawn('smtp-source', ['-s', String(conc), '-m', String(N), '-l', String(size), '-M', 'device.bench.test', '-f', 'device@bench.test', '-t', 'user@example.net', `${HOST}:${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  src.stderr!.on('data', (d) => { err += d; });
  const killer = setTimeout(() => src.kill('SIGTERM'), RUN_TIMEOUT_MS);
  const code = await new Promise<number | null>((r) => src.once('exit', (c) => r(c)));
  clearTimeout(killer);
  const t1 = performance.now();
  let t2: number | null = null;
  const end = t0 + RUN_TIMEOUT_MS;
  while (performance.now() < end) {
    if (sink.count() - base >= N) { t2 = performance.now(); break; }
    await sleep(5);
  }
  clearInterval(sampler);
  const cpu = cpuSeconds(peer.pids()) - cpu0;
  const loop = peer.loopPid ? mainThreadSeconds(peer.loopPid()) - loop0 : null;
  if (code !== 0) console.error(`  smtp-source exited ${code}: ${err.trim().split('\n').slice(-2).join(' | ')}`);
  return {
    peer: peer.name, size, conc, n: N,
    accept: +(N / ((t1 - t0) / 1000)).toFixed(1),
    e2e: t2 === null ? null : +(N / ((t2 - t0) / 1000)).toFixed(1),
    rssMb: +(peak.rss / 1024).toFixed(1),
    pssMb: +(peak.pss / 1024).toFixed(1),
    cpuMsPerMsg: +((cpu * 1000) / N).toFixed(3),
    loopMsPerMsg: loop === null ? null : +((loop * 1000) / N).toFixed(3),
    delivered: sink.count() - base,
  };
}

async function main(): Promise<void> {
  for (const bin of ['smtp-source', 'smtp-sink']) {
    if (spawnSync('which', [bin]).status !== 0) throw new Error(`${bin} not found: apt-get install postfix`);
  }
  const peers: Peer[] = args.peers!.split(',').map((p) => {
    if (p === 'smarthost') return smarthostPeer('smarthost', true);
    if (p === 'smarthost-tuned') return smarthostPeer('smarthost-tuned', true, 'tuned');
    if (p === 'smarthost-routes20') return smarthostPeer('smarthost-routes20', true, 'routes20');
    if (p === 'smarthost-nohistory') return smarthostPeer('smarthost-nohistory', false);
    if (p === 'postfix') return postfixPeer();
    // an earlier checkout (`--baseline DIR`, e.g. a `git worktree` of the last release): what a change
    // cost or won, measured in the same run; on its defaults, or `--baseline-variant tuned` for a
    // commit older than issue 14's defaults
    if (p === 'baseline' && args.baseline) return smarthostPeer('baseline', true, args['baseline-variant'] === 'tuned' ? 'tuned' : 'defaults', path.resolve(args.baseline));
    throw new Error(`unknown peer ${p}`);
  });
  // Every peer runs side by side from the start (each with its own sink), and the points are
  // interleaved: for each size, concurrency and run, each peer takes its turn, in an order rotated
  // from run to run. A shared machine's speed drifts over minutes; measured one peer after the
  // other, that drift would land in the ratios. Only one peer is under load at a time.
  const rows: Row[] = [];
  const started: Array<{ peer: Peer; port: number; sink: ReturnType<typeof startSink>; dir: string }> = [];
  try {
    for (const peer of peers) {
      const dir = mkdtempSync(path.join(tmpdir(), `bench-${peer.name}-`));
      const sinkPort = await freePort();
      const sink = startSink(sinkPort);
      started.push({ peer, port: 0, sink, dir });
      await waitPort(sinkPort);
      const port = await freePort();
      await peer.start(port, sinkPort, dir);
      started[started.length - 1].port = port;
      // warm-up: JIT, connection pools, first fsyncs
      await runPoint({ ...peer, name: 'warmup' }, port, sink, 1024, 10);
    }
    for (const size of SIZES) for (const conc of CONCS) for (let r = 0; r < RUNS; r++) {
      for (let k = 0; k < started.length; k++) {
        const { peer, port, sink } = started[(k + r) % started.length];
        const row = { ...(await runPoint(peer, port, sink, size, conc)), run: r };
        rows.push(row);
        console.error(`${peer.name} size=${size} c=${conc} run ${r + 1}: accept ${row.accept}/s, e2e ${row.e2e ?? 'TIMEOUT'}/s, peak RSS ${row.rssMb} MB, PSS ${row.pssMb} MB, CPU ${row.cpuMsPerMsg} ms/msg (event loop ${row.loopMsPerMsg ?? '-'})`);
      }
    }
  } finally {
    for (const { peer, sink, dir } of started) {
      await peer.stop().catch(() => undefined);
      sink.proc.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    }
  }
  printTable(rows);
  if (args.json) writeFileSync(args.json, JSON.stringify(rows, null, 2));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * The median over runs of peer ÷ reference measured in the same run (back to back): steadier than
 * a ratio of medians when the machine's speed drifts between runs.
 */
function pairedRatio(rows: Row[], peer: string, ref: string, size: number, conc: number, k: 'accept' | 'e2e'): number {
  const at = (p: string) => rows.filter((r) => r.peer === p && r.size === size && r.conc === conc);
  const ratios = at(peer).flatMap((row) => {
    const base = at(ref).find((x) => x.run === row.run);
    return base && base[k] && row[k] ? [(row[k] as number) / (base[k] as number)] : [];
  });
  return ratios.length ? median(ratios) : NaN;
}

function printTable(rows: Row[]): void {
  const peers = [...new Set(rows.map((r) => r.peer))];
  const ref = peers.includes('postfix') ? 'postfix' : undefined;
  const pick = (peer: string, size: number, conc: number, k: 'accept' | 'e2e' | 'rssMb' | 'pssMb' | 'cpuMsPerMsg' | 'loopMsPerMsg') =>
    median(rows.filter((r) => r.peer === peer && r.size === size && r.conc === conc).map((r) => r[k] ?? 0));
  const lines = ['| peer | size | conc | accept msg/s | e2e msg/s | peak RSS MB | peak PSS MB | CPU ms/msg | event loop ms/msg |' + (ref ? ' accept × postfix | e2e × postfix |' : ''), '|---|---|---|---|---|---|---|---|---|' + (ref ? '---|---|' : '')];
  for (const peer of peers) for (const size of SIZES) for (const conc of CONCS) {
    const a = pick(peer, size, conc, 'accept'), e = pick(peer, size, conc, 'e2e'), m = pick(peer, size, conc, 'rssMb'), q = pick(peer, size, conc, 'pssMb'), c = pick(peer, size, conc, 'cpuMsPerMsg'), l = peer === 'postfix' ? '-' : pick(peer, size, conc, 'loopMsPerMsg');
    let extra = '';
    if (ref) extra = ` ${pairedRatio(rows, peer, ref, size, conc, 'accept').toFixed(2)} | ${pairedRatio(rows, peer, ref, size, conc, 'e2e').toFixed(2)} |`;
    lines.push(`| ${peer} | ${size} | ${conc} | ${a} | ${e} | ${m} | ${q} | ${c} | ${l} |${extra}`);
  }
  console.log(lines.join('\n'));
}

/**
 * --mode idle: the memory a relay needs to hold many quiet clients (printers that connect and wait,
 * a slowloris). Each peer in turn: 15 s without traffic, sample RSS and PSS of its processes, open IDLE
 * connections (greeting read, EHLO answered, then nothing), sample, close them all, sample again.
 * Bounded: the connections must be ready within 30 s plus 0.1 s each (Postfix forks a process for each
 * one), and each peer is stopped before the next starts.
 */
async function idleMain(): Promise<void> {
  const peers: Peer[] = args.peers!.split(',').map((p) => {
    if (p === 'smarthost') return smarthostPeer('smarthost', true);
    if (p === 'smarthost-nohistory') return smarthostPeer('smarthost-nohistory', false);
    if (p === 'postfix') return postfixPeer();
    if (p === 'baseline' && args.baseline) return smarthostPeer('baseline', true, 'defaults', path.resolve(args.baseline));
    throw new Error(`unknown peer ${p} for --mode idle (smarthost, smarthost-nohistory, postfix, baseline with --baseline DIR)`);
  });
  const rows: Array<{ peer: string; stage: string; rssMb: number; pssMb: number; processes: number }> = [];
  const sample = (peer: Peer, stage: string) => {
    const pids = peer.pids();
    const m = memKb(pids);
    rows.push({ peer: peer.name, stage, rssMb: +(m.rss / 1024).toFixed(1), pssMb: +(m.pss / 1024).toFixed(1), processes: pids.length });
    console.error(`${peer.name} ${stage}: RSS ${(m.rss / 1024).toFixed(1)} MB, PSS ${(m.pss / 1024).toFixed(1)} MB (${pids.length} processes)`);
  };
  for (const peer of peers) {
    const dir = mkdtempSync(path.join(tmpdir(), `bench-${peer.name}-`));
    const sinkPort = await freePort();
    const sink = startSink(sinkPort);
    const sockets: net.Socket[] = [];
    try {
      await waitPort(sinkPort);
      const port = await freePort();
      await peer.start(port, sinkPort, dir);
      // idle: a relay that has had no traffic for a while (smarthost stops its idle worker threads)
      await sleep(15_000);
      sample(peer, 'idle');
      const deadline = Date.now() + 30_000 + IDLE * 100;
      for (let i = 0; i < IDLE; i += 50) {
        await Promise.all(Array.from({ length: Math.min(50, IDLE - i) }, () => idleClient(port, deadline).then((s) => { sockets.push(s); })));
      }
      await sleep(2000);
      sample(peer, `${IDLE} connections`);
      for (const s of sockets.splice(0)) s.destroy();
      await sleep(3000);
      sample(peer, 'closed');
    } finally {
      for (const s of sockets) s.destroy();
      await peer.stop().catch(() => undefined);
      sink.proc.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const stages = [...new Set(rows.map((r) => r.stage))];
  const lines = [`| peer | ${stages.map((s) => `RSS MB ${s} | PSS MB ${s}`).join(' | ')} |`, `|---|${stages.map(() => '---|---').join('|')}|`];
  for (const peer of new Set(rows.map((r) => r.peer))) {
    lines.push(`| ${peer} | ${stages.map((s) => { const r = rows.find((x) => x.peer === peer && x.stage === s); return r ? `${r.rssMb} | ${r.pssMb}` : '- | -'; }).join(' | ')} |`);
  }
  console.log(lines.join('\n'));
  if (args.json) writeFileSync(args.json, JSON.stringify(rows, null, 2));
}

/** One client that reads the greeting, sends EHLO, waits for the last 250 line, then stays silent. */
function idleClient(port: number, deadline: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, HOST);
    let got = '';
    let ehloSent = false;
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`an idle client was not ready (greeting, EHLO) in time; last reply: ${got.trim().slice(-120)}`)); }, Math.max(1000, deadline - Date.now()));
    s.on('error', (err) => { clearTimeout(timer); reject(err); });
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (!ehloSent && /^220 .*\r\n/m.test(got)) {
        ehloSent = true;
        got = '';
        s.write('EHLO idle.bench.test\r\n');
      } else if (ehloSent && /^250 .*\r\n/m.test(got)) {
        clearTimeout(timer);
        s.removeAllListeners('data');
        resolve(s);
      } else if (/^[45]\d\d .*\r\n/m.test(got)) {
        clearTimeout(timer);
        s.destroy();
        reject(new Error(`an idle client was refused: ${got.trim()}`));
      }
    });
  });
}

if (args.mode === 'idle') await idleMain();
else await main();
