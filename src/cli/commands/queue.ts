/**
 * smarthost queue list | show ID | retry ID | delete ID | flush | hold ID | release ID  [--config FILE] [--json]
 *
 * Works on the spool folders directly, so it also works while the relay runs (the relay notices the
 * changes at its next queue scan) and when it does not. It never runs crash recovery: that belongs to
 * `serve`. An id may be given by a unique start of it (as with git); several matches are listed.
 * Exit code 1 when the queue id is unknown, 2 when the start given matches several.
 */
import type { Command } from 'commander';
import { existsSync, statSync } from 'node:fs';

interface QueueOptions {
  config?: string;
  json?: boolean;
}

async function open(opts: QueueOptions) {
  const { loadConfig } = await import('../../config/load.ts');
  const { openSpool } = await import('../../queue/spool.ts');
  const { systemClock } = await import('../../core/clock.ts');
  const { createLogger } = await import('../../core/logger.ts');
  const { findConfig, noConfigError } = await import('../../config/locate.ts');
  const found = findConfig(opts.config);
  // Without a config file the only spool that can be meant is ./mailroot left by `serve` run on
  // the embedded defaults in this folder; never create one here.
  if (!found.file && !(existsSync('mailroot') && statSync('mailroot').isDirectory())) throw noConfigError(found);
  if (!found.file) process.stderr.write(`smarthost: no config file found (looked for ${found.tried.slice(1).join(', ')}); using the embedded defaults and the spool in ./mailroot\n`);
  const config = loadConfig(found.file);
  return openSpool(config, { clock: systemClock, logger: createLogger({ level: 'warn', destination: process.stderr }), recover: false });
}

const out = (text: string): void => {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
};

function age(iso: string): string {
  const ms = Date.now() - Date.parse(iso);
  if (!Number.isFinite(ms) || ms < 0) return '-';
  const m = Math.floor(ms / 60_000);
  return m < 60 ? `${m}m` : m < 2880 ? `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}` : `${Math.floor(m / 1440)}d`;
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n');
}

export function register(program: Command): void {
  const queue = program.command('queue').description('look at and act on the queued messages (spool folders)');
  const withCommon = (c: Command) => c.option('-c, --config <file>', 'YAML config file (default: SMARTHOST_CONFIG, else /etc/smarthost/smarthost.yaml, else ./smarthost.yaml)').option('--json', 'machine-readable output');

  withCommon(queue.command('list').description('list queued messages: id, state, age, size, sender, recipients, next attempt, last error'))
    .option('--state <state>', 'only incoming, active, deferred or hold')
    .action(async (opts: QueueOptions & { state?: 'incoming' | 'active' | 'deferred' | 'hold' }) => {
      const spool = await open(opts);
      const entries = await spool.list({ state: opts.state });
      if (opts.json) return out(JSON.stringify(entries.map((e) => ({ state: e.state, ...e.record })), null, 2));
      if (!entries.length) return out('The queue is empty.');
      const rows = [['ID', 'STATE', 'AGE', 'SIZE', 'FROM', 'TO (pending)', 'NEXT', 'LAST ERROR']];
      for (const { state, record: r } of entries) {
        const pending = r.recipients.filter((x) => x.state === 'pending').map((x) => x.address);
        const next = state === 'deferred' ? new Date(r.nextAttemptAt).toISOString().slice(11, 19) : state === 'hold' ? 'held' : 'now';
        rows.push([r.id, state + (r.possibleDuplicate ? '*' : ''), age(r.envelope.receivedAt), String(r.envelope.size), r.envelope.mailFrom || '<>', pending.join(',') || '-', next, (r.lastError ?? r.holdReason ?? '').slice(0, 60)]);
      }
      out(table(rows));
      out(`${entries.length} message(s).${entries.some((e) => e.record.possibleDuplicate) ? ' * = an upstream may already have an earlier copy.' : ''}`);
    });

  withCommon(queue.command('show').argument('<id>', 'queue id, or a unique start of one').description('envelope, each recipient\'s state and last reply, and the message headers'))
    .action(async (id: string, opts: QueueOptions) => {
      const spool = await open(opts);
      const d = await spool.show(await spool.resolveId(id));
      if (opts.json) return out(JSON.stringify({ state: d.state, ...d.record, headerPreview: d.headerPreview }, null, 2));
      const r = d.record;
      const lines = [
        `Queue id:    ${r.id}`,
        `State:       ${d.state}${r.holdReason ? ` (${r.holdReason})` : ''}${r.waitingForUpstream ? ` — waiting for upstream ${r.waitingForUpstream}` : ''}`,
        `Received:    ${r.envelope.receivedAt} from ${r.envelope.client.address || 'pickup'} (${r.envelope.client.source})`,
        `Sender:      ${r.envelope.mailFrom || '<>'}`,
        `Size:        ${r.envelope.size} octets`,
        `Attempts:    ${r.attempts}${d.state === 'deferred' ? `, next ${new Date(r.nextAttemptAt).toISOString()}` : ''}`,
        `Duplicate?:  ${r.possibleDuplicate ? 'possibly — an upstream may already have an earlier copy' : 'no'}`,
        '',
        'Recipients:',
        ...r.recipients.map((x) => `  ${x.address.padEnd(32)} ${x.state.padEnd(9)} ${x.lastOutcome ? `${x.lastOutcome.diagnostic ?? x.lastOutcome.status}${x.lastOutcome.reason ? ` — ${x.lastOutcome.reason}` : ''}` : ''}`),
        '',
        'Headers:',
        ...d.headerPreview.split(/\r?\n/).slice(0, 40).map((l) => `  ${l}`),
      ];
      out(lines.join('\n'));
    });

  withCommon(queue.command('retry').argument('<id>', 'queue id, or a unique start of one').description('make a deferred or held message due now'))
    .action(async (given: string, opts: QueueOptions) => {
      const spool = await open(opts);
      const id = await spool.resolveId(given);
      await spool.retry(id);
      out(opts.json ? JSON.stringify({ id, retried: true }) : `${id}: due now.`);
    });

  withCommon(queue.command('delete').argument('<id>', 'queue id, or a unique start of one').description('remove a message from the queue (it is not delivered)'))
    .action(async (given: string, opts: QueueOptions) => {
      const spool = await open(opts);
      const id = await spool.resolveId(given);
      await spool.delete(id, 'deleted with smarthost queue delete');
      out(opts.json ? JSON.stringify({ id, deleted: true }) : `${id}: deleted.`);
    });

  withCommon(queue.command('flush').description('make every deferred message due now'))
    .action(async (opts: QueueOptions) => {
      const n = await (await open(opts)).flush();
      out(opts.json ? JSON.stringify({ flushed: n }) : `${n} deferred message(s) due now.`);
    });

  withCommon(queue.command('hold').argument('<id>', 'queue id, or a unique start of one').description('park a message (no delivery until released)'))
    .action(async (given: string, opts: QueueOptions) => {
      const spool = await open(opts);
      const id = await spool.resolveId(given);
      await spool.hold(id);
      out(opts.json ? JSON.stringify({ id, held: true }) : `${id}: held.`);
    });

  withCommon(queue.command('release').argument('<id>', 'queue id, or a unique start of one').description('release a held message (due now)'))
    .action(async (given: string, opts: QueueOptions) => {
      const spool = await open(opts);
      const id = await spool.resolveId(given);
      await spool.release(id);
      out(opts.json ? JSON.stringify({ id, released: true }) : `${id}: released, due now.`);
    });
}
