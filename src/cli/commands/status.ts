/**
 * smarthost status [--config FILE] [--json] — is the relay ok, degraded or down, and why.
 *
 * With the console on (web.enabled, the default) it asks the running relay's /healthz, the same
 * report a load balancer and the console see: only the running process knows its listeners,
 * upstream states and history writer. With the console off it checks what it can from outside:
 * each SMTP listener answers 220, the spool takes a file (tmp/ → incoming/, fsynced), the queue's
 * oldest message; upstream states are then not known, and it says so.
 *
 * Exit codes follow the Nagios plugin convention, so the command is a monitoring check as it is:
 * 0 ok · 1 degraded (WARNING) · 2 down (CRITICAL) · 3 could not tell (UNKNOWN).
 */
import type { Command } from 'commander';
import net from 'node:net';
import type { Config } from '../../config/schema.ts';
import type { HealthCheck, HealthReport } from '../../web/health.ts';

const EXIT = { ok: 0, degraded: 1, down: 2, unknown: 3 } as const;

/** The console's URL as a local client reaches it (a wildcard address is reached on loopback). */
export function consoleUrl(config: Pick<Config, 'web'>): string {
  const a = config.web.address;
  const host = a === '0.0.0.0' ? '127.0.0.1' : a === '::' || a === '[::]' ? '[::1]' : a.includes(':') ? `[${a}]` : a;
  return `http://${host}:${config.web.port}/healthz`;
}

/** Connects, waits for the 220 greeting, says QUIT: the listener accepts mail. */
function smtpGreets(host: string, port: number, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host, port });
    let buf = '';
    const done = (err?: Error, line?: string) => {
      clearTimeout(timer);
      socket.removeAllListeners('data');
      if (err) {
        socket.destroy();
        reject(err);
      } else {
        socket.end('QUIT\r\n');
        resolve(line!);
      }
    };
    const timer = setTimeout(() => done(new Error(`no greeting within ${timeoutMs / 1000} s`)), timeoutMs);
    socket.on('error', (err) => done(err));
    socket.on('data', (chunk) => {
      buf += chunk.toString('latin1');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const line = buf.slice(0, nl).trim();
      if (line.startsWith('220')) done(undefined, line);
      else done(new Error(`greeted with "${line.slice(0, 120)}"`));
    });
  });
}

async function offlineReport(config: Config, note: string): Promise<HealthReport> {
  const { openSpool } = await import('../../queue/spool.ts');
  const { systemClock } = await import('../../core/clock.ts');
  const { createLogger } = await import('../../core/logger.ts');
  const { queueCheck, spoolCheck, worst } = await import('../../web/health.ts');
  const checks: HealthCheck[] = [];
  for (const l of config.listen) {
    const name = `smtp ${l.address}:${l.port}`;
    try {
      await smtpGreets(l.address, l.port);
      checks.push({ name, status: 'ok', reason: 'answers with a 220 greeting' });
    } catch (err) {
      checks.push({ name, status: 'down', reason: `not accepting mail: ${(err as Error).message}` });
    }
  }
  try {
    const spool = await openSpool(config, { clock: systemClock, logger: createLogger({ level: 'error', destination: process.stderr }), recover: false });
    checks.push(await spoolCheck(() => spool.probe()));
    const entries = await spool.list();
    checks.push(queueCheck(entries.map((e) => ({ id: e.record.id, state: e.record.holdReason ? 'parked' : e.state, receivedAt: e.record.envelope.receivedAt, lastReason: e.record.holdReason ?? e.record.lastError, mailFrom: '', recipients: [], size: 0 })), Date.now(), config.web.health.queueAge));
  } catch (err) {
    checks.push({ name: 'spool', status: 'down', reason: `the spool at ${config.mailrootPath} cannot be opened: ${(err as Error).message}` });
  }
  return { status: worst(checks), at: new Date().toISOString(), checks, notKnown: [`upstreams and history: ${note}`] };
}

function render(report: HealthReport, source: string): string {
  const mark = { ok: 'ok  ', degraded: 'WARN', down: 'DOWN' } as const;
  const head = { ok: 'smarthost is OK', degraded: 'smarthost is DEGRADED: mail is accepted, but something needs a look', down: 'smarthost is DOWN: new mail cannot be accepted' }[report.status];
  return [`${head} (${source})`, ...report.checks.map((c) => `  ${mark[c.status]}  ${c.name}: ${c.reason}`), ...(report.notKnown ?? []).map((n) => `  ?     not known: ${n}`)].join('\n');
}

export function register(program: Command): void {
  program.command('status')
    .description('is the relay ok, degraded or down, and why (asks the running relay\'s /healthz; exit 0 ok, 1 degraded, 2 down, 3 unknown)')
    .option('-c, --config <file>', 'YAML config file (default: SMARTHOST_CONFIG, else /etc/smarthost/smarthost.yaml, else ./smarthost.yaml, else the embedded defaults serve runs on)')
    .option('--json', 'print the report as JSON (the /healthz body)')
    .action(async (opts: { config?: string; json?: boolean }) => {
      const { loadConfig } = await import('../../config/load.ts');
      const { findConfig } = await import('../../config/locate.ts');
      // As serve: with no config file anywhere, the relay runs on the embedded defaults, so check those.
      const config = loadConfig(findConfig(opts.config).file);
      let report: HealthReport;
      let source: string;
      if (config.web.enabled) {
        const url = consoleUrl(config);
        source = url;
        try {
          const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
          report = (await res.json()) as HealthReport;
          if (!report || !Array.isArray(report.checks)) throw new Error(`HTTP ${res.status} without a health report`);
        } catch (err) {
          const cause = (err as Error & { cause?: Error }).cause?.message ?? (err as Error).message;
          report = await offlineReport(config, 'the relay did not answer');
          report.checks.unshift({ name: 'relay', status: 'down', reason: `the relay does not answer at ${url} (${cause}): is \`smarthost serve\` running with this config?` });
          report.status = 'down';
          source = 'checked from outside';
        }
      } else {
        source = 'the console is off (web.enabled: false): checked from outside';
        report = await offlineReport(config, 'the console is off, and only the running relay knows them (turn web.enabled on for the full report)');
      }
      process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : `${render(report, source)}\n`);
      process.exitCode = EXIT[report.status] ?? EXIT.unknown;
    });
}
