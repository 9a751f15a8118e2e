/**
 * smarthost m365 login | token | explain — Microsoft 365 helpers:
 *   login    runs the device-code sign-in once for an upstream with oauth mode delegated and stores
 *            the refresh token under the mailroot (owner-only);
 *   token    gets a token for an upstream as the relay would and shows what it grants (audience,
 *            permissions, expiry) — never the token itself;
 *   explain  turns a Microsoft 365 reply (SMTP code, Graph error, AADSTS code) into meaning and fix.
 * Exit codes: 0 ok, 1 refused / unknown, 2 usage or config error.
 */
import type { Command } from 'commander';

interface UpstreamOptions { config?: string; upstream?: string }

async function pickUpstream(opts: UpstreamOptions) {
  const { loadConfig } = await import('../../config/load.ts');
  const { SmarthostError } = await import('../../core/errors.ts');
  const { requireConfig } = await import('../../config/locate.ts');
  const cfg = loadConfig(requireConfig(opts.config));
  const upstream = opts.upstream ? cfg.upstreams.find((u) => u.name === opts.upstream) : cfg.upstreams.find((u) => u.oauth);
  if (!upstream) {
    const names = cfg.upstreams.map((u) => u.name).join(', ') || '(none)';
    throw new SmarthostError('SH_USAGE', opts.upstream ? `no upstream named "${opts.upstream}" in ${cfg.source} (upstreams: ${names})` : `no upstream with an oauth: section in ${cfg.source}`);
  }
  if (!upstream.oauth) throw new SmarthostError('SH_USAGE', `upstream ${upstream.name} has no oauth: section (see docs/microsoft-365.md)`);
  const { configDirOf } = await import('../../config/schema.ts');
  return { cfg, upstream, configDir: configDirOf(cfg) };
}

export function register(program: Command): void {
  const m365 = program.command('m365').description('Microsoft 365: sign in, test tokens, explain error codes');

  m365
    .command('login')
    .description('sign in once with a device code for an upstream with oauth mode delegated; stores the refresh token owner-only')
    .option('-c, --config <file>', 'YAML config file (default: SMARTHOST_CONFIG, else /etc/smarthost/smarthost.yaml, else ./smarthost.yaml)')
    .option('-u, --upstream <name>', 'upstream to sign in for (default: the first with oauth)')
    .action(async (opts: UpstreamOptions) => {
      const { cfg, upstream, configDir } = await pickUpstream(opts);
      const { loginWithDeviceCode, tokenCachePath } = await import('../../m365/tokens.ts');
      const who = await loginWithDeviceCode(upstream, { mailroot: cfg.mailrootPath, configDir }, (message) => process.stdout.write(`${message}\n`));
      process.stdout.write(`Signed in as ${who.username}. The sign-in is stored in ${tokenCachePath(upstream, cfg.mailrootPath)} (owner-only) and renewed automatically; run this command again if Microsoft revokes it.\n`);
    });

  m365
    .command('token')
    .description('get a token for an upstream as the relay would, and show what it grants (never the token)')
    .option('-c, --config <file>', 'YAML config file (default: SMARTHOST_CONFIG, else /etc/smarthost/smarthost.yaml, else ./smarthost.yaml)')
    .option('-u, --upstream <name>', 'upstream to test (default: the first with oauth)')
    .action(async (opts: UpstreamOptions) => {
      const { cfg, upstream, configDir } = await pickUpstream(opts);
      const { createTokenProvider, scopeFor, tokenClaims } = await import('../../m365/tokens.ts');
      const { createLogger } = await import('../../core/logger.ts');
      const provider = createTokenProvider(upstream, { logger: createLogger({ level: 'warn' }), mailroot: cfg.mailrootPath, configDir });
      const token = await provider.getToken();
      const claims = tokenClaims(token);
      const grants = Array.isArray(claims.roles) ? `application permissions: ${(claims.roles as string[]).join(', ') || '(none)'}` : `delegated scopes: ${String(claims.scp ?? '(none)')}`;
      process.stdout.write([
        `upstream ${upstream.name}: token obtained (scope ${scopeFor(upstream)})`,
        `  audience   ${String(claims.aud ?? '?')}`,
        `  tenant     ${String(claims.tid ?? '?')}`,
        `  app        ${String(claims.appid ?? claims.azp ?? '?')}${claims.upn ? `, user ${String(claims.upn)}` : ''}`,
        `  grants     ${grants}`,
        `  expires    ${new Date(provider.expiresAt() ?? 0).toISOString()}`,
        '',
      ].join('\n'));
      if (Array.isArray(claims.roles) && (claims.roles as string[]).length === 0) {
        process.stdout.write('  note: the token carries no application permission; for SMTP this is right only with the RBAC role "Application SMTP.SendAsApp" (docs/microsoft-365.md); otherwise grant the permission and admin consent.\n');
      }
    });

  m365
    .command('explain')
    .argument('<reply...>', 'a reply or code, e.g. "550 5.7.60 Client does not have permissions…", 5.7.139, AADSTS50173, ErrorSendAsDenied')
    .description('explain a Microsoft 365 error: what it means and what to do')
    .action(async (words: string[]) => {
      const { explainM365 } = await import('../../m365/errors.ts');
      const text = words.join(' ').trim();
      const code = /^(\d{3})\b/.exec(text)?.[1];
      const enhanced = /\b([245]\.\d{1,3}\.\d{1,3})\b/.exec(text)?.[1];
      const e = explainM365(code ? Number(code) : 0, enhanced, text);
      if (!e) {
        process.stdout.write(`No Microsoft 365 explanation known for "${text}".\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(`${e.id}\n  What it means: ${e.meaning}\n  What to do:    ${e.fix}\n  Route broken:  ${e.routeBroken ? 'yes — smarthost parks this upstream; messages wait in the queue until it is fixed' : 'no — only this message (or recipient) is affected'}\n`);
    });
}

