/**
 * smarthost send --from A --to B [--subject S] [--body T] [--server host:port | --upstream NAME] [--config FILE] [--trace]
 *
 * Sends a test message, either through the relay (SMTP to its listener: --server, default the first
 * configured listener) or straight to a configured upstream (--upstream NAME), exactly as the relay
 * would deliver it. --trace prints the whole SMTP dialogue; passwords and tokens show as "/* secret *\/".
 * Exit code 0 when every recipient was accepted, 1 otherwise.
 */
import type { Command } from 'commander';

interface SendOptions {
  from: string;
  to: string[];
  subject?: string;
  body?: string;
  server?: string;
  upstream?: string;
  config?: string;
  trace?: boolean;
  user?: string;
  password?: string;
  verifyCertificate?: boolean;
}

const print = (line: string) => process.stdout.write(`${line}\n`);

/** "host:port", "[::1]:2525" or "host" (port 25). */
export function parseServer(spec: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(spec.trim());
  if (!m) throw new Error(`--server must be host:port, got ${JSON.stringify(spec)}`);
  return { host: m[1] ?? m[2], port: m[3] ? Number(m[3]) : 25 };
}

async function buildMessage(opts: SendOptions, route: string): Promise<Buffer> {
  const { default: MailComposer } = await import('nodemailer/lib/mail-composer');
  const text = opts.body ?? `This is a test message from smarthost, sent ${new Date().toISOString()} ${route}.\r\nIf you can read this, the path works.`;
  const mail = new MailComposer({ from: opts.from, to: opts.to, subject: opts.subject ?? 'smarthost test message', text, headers: { 'X-Mailer': 'smarthost send' } });
  return mail.compile().build();
}

async function viaRelay(opts: SendOptions): Promise<boolean> {
  const { loadConfig } = await import('../../config/load.ts');
  const nodemailer = (await import('nodemailer')).default;
  let target: { host: string; port: number; implicit: boolean };
  if (opts.server) target = { ...parseServer(opts.server), implicit: false };
  else {
    const { findConfig } = await import('../../config/locate.ts');
    const found = findConfig(opts.config);
    // No config: the relay can only be one on the embedded defaults; sending touches no spool.
    if (!found.file) process.stderr.write(`smarthost: no config file found (looked for ${found.tried.slice(1).join(', ')}); sending to the embedded defaults' listener\n`);
    const cfg = loadConfig(found.file);
    const l = cfg.listen[0];
    target = { host: l.address === '0.0.0.0' || l.address === '::' ? '127.0.0.1' : l.address, port: l.port, implicit: l.tls === 'implicit' };
  }
  const raw = await buildMessage(opts, `through the relay at ${target.host}:${target.port}`);
  const { format } = await import('node:util');
  const write = (_e: unknown, msg: string, ...args: unknown[]) => print(format(msg, ...args));
  const transporter = nodemailer.createTransport({
    host: target.host,
    port: target.port,
    secure: target.implicit,
    // the relay's certificate is often self-signed: verify only when asked
    tls: { rejectUnauthorized: Boolean(opts.verifyCertificate) },
    auth: opts.user ? { user: opts.user, pass: opts.password ?? '' } : undefined,
    name: (await import('node:os')).hostname(),
    logger: opts.trace ? { trace: write, debug: write, info: write, warn: write, error: write, fatal: write } : false,
    debug: Boolean(opts.trace),
  } as Parameters<typeof nodemailer.createTransport>[0]);
  try {
    const info = await transporter.sendMail({ envelope: { from: opts.from, to: opts.to }, raw });
    for (const r of info.accepted ?? []) print(`accepted  ${String(r)}`);
    for (const r of info.rejected ?? []) print(`refused   ${String(r)}`);
    print(`relay said: ${info.response}`);
    return (info.rejected ?? []).length === 0;
  } catch (e) {
    const err = e as Error & { response?: string };
    print(`not sent: ${err.response ?? err.message}`);
    return false;
  } finally {
    transporter.close();
  }
}

async function viaUpstream(opts: SendOptions): Promise<boolean> {
  const { loadConfig } = await import('../../config/load.ts');
  const { createLogger } = await import('../../core/logger.ts');
  const { requireConfig } = await import('../../config/locate.ts');
  const cfg = loadConfig(requireConfig(opts.config));
  const upstream = cfg.upstreams.find((u) => u.name === opts.upstream);
  if (!upstream) {
    const { SmarthostError } = await import('../../core/errors.ts');
    throw new SmarthostError('SH_USAGE', `no upstream named "${opts.upstream}" in ${cfg.source} (known: ${cfg.upstreams.map((u) => u.name).join(', ') || 'none'})`);
  }
  const logger = createLogger({ level: 'warn', destination: process.stderr });
  const { configDirOf } = await import('../../config/schema.ts');
  const configDir = configDirOf(cfg);
  let transport;
  if (/^(smtp\+starttls|smtps|smtp):\/\//.test(upstream.url)) {
    const { createSmtpTransport } = await import('../../transports/smtp.ts');
    let tokenProvider;
    if (upstream.auth === 'xoauth2') {
      const { createTokenProvider } = await import('../../m365/tokens.ts');
      const { smtpTokenSource } = await import('../../m365/xoauth2.ts');
      tokenProvider = smtpTokenSource(createTokenProvider(upstream, { logger, mailroot: cfg.mailrootPath, configDir }));
    }
    transport = createSmtpTransport(upstream, { logger, hostname: cfg.hostnameResolved, tokenProvider, pool: false, configDir, trace: opts.trace ? print : undefined });
  } else {
    const { buildTransports } = await import('../compose/transports.ts');
    const { systemClock } = await import('../../core/clock.ts');
    transport = (await buildTransports({ ...cfg, upstreams: [upstream] }, { logger, clock: systemClock })).transports[0];
    if (opts.trace) print(`(no SMTP dialogue to trace: ${upstream.name} is ${upstream.url.split(':')[0]})`);
  }
  const raw = await buildMessage(opts, `straight to upstream ${upstream.name}`);
  const { Readable } = await import('node:stream');
  const outcomes = await transport.send({ id: 'smarthost-send', mailFrom: opts.from, recipients: opts.to, size: raw.length, open: () => Readable.from([raw]), read: async () => raw });
  await transport.close();
  const { explainOutcome } = await import('../../outbound/explain.ts');
  for (const o of outcomes) {
    print(`${o.action.padEnd(9)} ${o.recipient}  ${o.diagnostic ?? o.status}`);
    if (o.action !== 'delivered') {
      const why = explainOutcome(o);
      print(`          What it means: ${why.meaning}`);
      print(`          What to do:    ${why.fix}`);
    }
  }
  return outcomes.every((o) => o.action === 'delivered');
}

export function register(program: Command): void {
  program
    .command('send')
    .description('send a test message through the relay, or straight to an upstream, optionally printing the SMTP dialogue')
    .requiredOption('--from <address>', 'envelope sender and From:')
    .requiredOption('--to <address...>', 'recipient(s)')
    .option('--subject <text>', 'Subject: (default "smarthost test message")')
    .option('--body <text>', 'message text')
    .option('--server <host:port>', 'relay to send through (default: the first listener of the config)')
    .option('--upstream <name>', 'send straight to this configured upstream instead of through the relay')
    .option('--user <name>', 'authenticate to the relay as this user (with --server)')
    .option('--password <password>', 'password for --user')
    .option('--verify-certificate', 'verify the relay\'s TLS certificate (off by default: it is often self-signed)')
    .option('-c, --config <file>', 'YAML config file (default: SMARTHOST_CONFIG, else /etc/smarthost/smarthost.yaml, else ./smarthost.yaml)')
    .option('--trace', 'print the whole SMTP dialogue (passwords masked)')
    .action(async (opts: SendOptions) => {
      if (opts.server && opts.upstream) {
        const { SmarthostError } = await import('../../core/errors.ts');
        throw new SmarthostError('SH_USAGE', 'use --server or --upstream, not both');
      }
      const ok = opts.upstream ? await viaUpstream(opts) : await viaRelay(opts);
      if (!ok) process.exitCode = 1;
    });
}
