/** smarthost route test --from A --to B [--client IP] [--user U] — which route a message takes, and why. */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';

export function register(program: Command): void {
  const route = program.command('route').description('routing: which route (upstreams, sender policy, NDR sender) a message takes');
  route
    .command('test')
    .description('print the route a message would take and the rule that chose it (nothing is sent)')
    .requiredOption('--from <address>', 'envelope sender (MAIL FROM); "" for the null sender')
    .requiredOption('--to <address...>', 'recipient(s); several may be given, separated by spaces or commas')
    .option('--header-from <address>', 'From: header address (default: the envelope sender)')
    .option('--client <ip>', 'client IP address', '127.0.0.1')
    .option('--user <name>', 'authenticated SMTP user')
    .option('--config <file>', 'YAML config file (default ./smarthost.yaml when present)')
    .option('--json', 'print the result as JSON')
    .action(async (o: { from: string; to: string[]; headerFrom?: string; client: string; user?: string; config?: string; json?: boolean }) => {
      const { loadConfig } = await import('../../config/load.ts');
      const { createRouter, routingWarnings } = await import('../../routing/index.ts');
      const { ndrSenderFor } = await import('../../m365/ndr-sender.ts');
      const { checksSendAs, mailboxOf, routeSendAsProblem, sendAsFailoverWarnings } = await import('../../routing/send-as.ts');
      const { createSenderCheck } = await import('../../inbound/sender-policy.ts');
      const net = await import('node:net');
      const { SmarthostError } = await import('../../core/errors.ts');
      if (!net.isIP(o.client)) throw new SmarthostError('SH_USAGE', `--client "${o.client}" is not an IP address`);
      const config = loadConfig(o.config ?? (existsSync('smarthost.yaml') ? 'smarthost.yaml' : undefined));
      const router = createRouter(config);
      const recipients = o.to.flatMap((t) => t.split(',')).map((t) => t.trim()).filter(Boolean);
      const choices = router.choose({ mailFrom: o.from, headerFrom: o.headerFrom ?? o.from, recipients, clientAddress: o.client, user: o.user });
      const result = choices.map((c) => {
        const r = router.route(c.route)!;
        const first = config.upstreams.find((u) => u.name === r.upstreams[0]);
        const ndr = ndrSenderFor(first, r.ndr?.from ?? config.ndr.from, config.hostnameResolved);
        // the same question the listener asks before 250 (routing/send-as.ts): the route's first upstream decides
        const problem = routeSendAsProblem(config, r, { mailFrom: o.from, headerFrom: o.headerFrom ?? o.from });
        const sendAs = problem
          ? { ok: false, detail: `refused before 250 (550 5.7.60): ${problem.address}: ${problem.why}; fix: ${problem.fix}` }
          : { ok: true, detail: r.sender?.mode === 'rewrite' ? `ok (sent as ${r.sender.rewriteTo})` : !first || !checksSendAs(first) ? `ok (${first ? `upstream ${first.name} takes any sender` : 'no upstream'})` : `ok (mailbox ${mailboxOf(first) ?? 'none'} of upstream ${first.name} may send as it)` };
        return { route: c.route, why: c.why, recipients: c.recipients, upstreams: r.upstreams, sender: r.sender?.mode ?? 'send-as', rewriteTo: r.sender?.rewriteTo, sendAs, reportsFrom: ndr.mailFrom || `<> (From: ${ndr.from})` };
      });
      // what the listener itself would answer at end of DATA (senders: rules included)
      const verdict = createSenderCheck(config)({ clientAddress: o.client, user: o.user, mailFrom: o.from, headerFrom: o.headerFrom ?? o.from, recipients, stage: 'data' });
      const refused = verdict.verdict === 'reject' ? `${verdict.code} ${verdict.status} ${verdict.message}` : undefined;
      if (o.json) {
        process.stdout.write(`${JSON.stringify({ config: config.source, routing: router.active, routes: result, refused }, null, 2)}\n`);
        return;
      }
      const lines: string[] = [];
      if (!router.active) lines.push('no routes configured: every message takes every upstream in order (failover)');
      if (result.length > 1) lines.push(`the message is split into ${result.length} parts, one per route:`);
      for (const r of result) {
        lines.push(`route ${r.route}: ${r.why}`,
          `  recipients: ${r.recipients.join(', ')}`,
          `  upstreams:  ${r.upstreams.join(' → ') || '(none configured)'}`,
          `  sender:     ${r.sender}${r.rewriteTo ? ` (as ${r.rewriteTo})` : ''}`,
          `  send-as:    ${r.sendAs.detail}`,
          `  reports:    sent as ${r.reportsFrom}`);
      }
      lines.push(refused ? `the relay would refuse this message before 250: ${refused}` : 'the relay would accept this sender (send-as checked before 250)');
      for (const w of [...routingWarnings(config), ...sendAsFailoverWarnings(config)]) lines.push(`warning: ${w}`);
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
