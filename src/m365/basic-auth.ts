/**
 * The Basic-auth countdown: an upstream that signs in to Exchange Online's client submission
 * endpoint (smtp.office365.com, smtp-legacy.office365.com) with a username and password gets a
 * warning naming the date and the way to OAuth. Microsoft's plan (research m365.md §1, MC786329 as
 * updated 2026-01-27): Basic auth for SMTP AUTH is disabled by default for existing tenants at the end
 * of December 2026 (admins can turn it back on until a final date announced in H2 2027); tenants
 * created after that never have it. After the switch-off mail fails with 535 5.7.139 or 550 5.7.30.
 * Pure: returns the text, or undefined when the upstream is not concerned.
 */
import type { UpstreamConfig } from '../config/sections/upstreams.ts';

/** End of December 2026, the default switch-off for existing tenants. */
export const BASIC_AUTH_OFF_BY_DEFAULT = Date.UTC(2026, 11, 31, 23, 59, 59);

const SUBMISSION_HOSTS = /^(smtp|smtp-legacy)\.office365\.com$/i;

export function basicAuthWarning(upstream: UpstreamConfig, now: number): string | undefined {
  const usesBasic = upstream.auth === 'basic' || (upstream.auth === undefined && Boolean(upstream.username));
  if (!usesBasic) return undefined;
  let host: string;
  try {
    host = new URL(upstream.url.replace(/^[a-z+]+:\/\//i, 'smtp://')).hostname;
  } catch {
    return undefined;
  }
  if (!SUBMISSION_HOSTS.test(host)) return undefined;
  const days = Math.ceil((BASIC_AUTH_OFF_BY_DEFAULT - now) / 86_400_000);
  const when = days > 0
    ? `Exchange Online turns Basic authentication for SMTP AUTH off by default for existing tenants at the end of December 2026 (in ${days} day${days === 1 ? '' : 's'}), and tenants created after that never have it`
    : 'Exchange Online has turned Basic authentication for SMTP AUTH off by default since the end of December 2026 (an admin may have turned it back on until Microsoft\'s final removal date)';
  return `upstream ${upstream.name} signs in to ${host} with a username and password (Basic auth). ${when}; mail then fails with 535 5.7.139 or 550 5.7.30. `
    + `Move it to OAuth: register an app and grant it SMTP.SendAsApp (docs/microsoft-365.md), set "auth: xoauth2", "mailbox: ${upstream.username ?? 'MAILBOX'}" and an "oauth:" section on this upstream, `
    + `then check it with: smarthost m365 token --config FILE --upstream ${upstream.name}`;
}
