/**
 * Does a sending domain's SPF record authorise the path its mail takes out of the relay?
 *
 *   through Microsoft 365 (smtp.office365.com, graph://, xoauth2)  → include:spf.protection.outlook.com
 *                                                                   somewhere in the include/redirect tree
 *   connector:// or direct delivery (the relay itself connects)   → the relay's public address: a real
 *                                                                   RFC 7208 check_host() with that IP must pass
 *   any other smart host                                          → the smart host's address is tried with
 *                                                                   check_host(); a failure is only a warning,
 *                                                                   since providers often send from other hosts
 *
 * Uses the injected DNS client and the project's SPF evaluator (../spf). DNS trouble is
 * "could-not-check", never "not authorised". Never throws for DNS reasons.
 */
import { recordsOf, type DnsClient } from '../dns/client.ts';
import { checkHost } from '../spf/evaluate.ts';
import { isIp4Literal, isIp6Literal, isSpfRecord, parseRecord } from '../spf/parse.ts';

export type SendingPath =
  | { kind: 'microsoft365'; why: string }
  | { kind: 'relay-ip'; why: string }
  | { kind: 'smart-host'; host: string; why: string }
  | { kind: 'none'; why: string };

export interface SpfPathResult {
  domain: string;
  path: SendingPath;
  state: 'ok' | 'problem' | 'warning' | 'could-not-check' | 'skipped';
  detail: string;
}

const MICROSOFT_SUBMISSION = /(^|\.)(office365\.com|outlook\.com|microsoftonline\.com)$/i;
const MICROSOFT_SPF = 'spf.protection.outlook.com';

/** What an upstream URL needs the SPF record to authorise. */
export function sendingPathOf(url: string, auth?: string): SendingPath {
  const scheme = /^([a-z+]+):\/\//i.exec(url)?.[1]?.toLowerCase() ?? '';
  if (scheme === 'graph') return { kind: 'microsoft365', why: 'Graph sendMail: Microsoft 365 sends the message' };
  if (scheme === 'connector') return { kind: 'relay-ip', why: 'connector/direct send: the relay connects to the tenant\'s MX itself' };
  let host = '';
  try {
    host = new URL(url.replace(/^[a-z+]+:\/\//i, 'smtp://')).hostname.toLowerCase();
  } catch {
    return { kind: 'none', why: `cannot read the host of ${url}` };
  }
  if (MICROSOFT_SUBMISSION.test(host) || auth === 'xoauth2') return { kind: 'microsoft365', why: `SMTP submission to ${host}: Microsoft 365 sends the message` };
  if (/\.mail\.protection\.outlook\.com$|\.mx\.microsoft$/i.test(host)) return { kind: 'relay-ip', why: `direct to the tenant MX ${host}: the relay's own address is what Microsoft 365 sees` };
  return { kind: 'smart-host', host, why: `smart host ${host} sends the message on` };
}

/** Walks the SPF include/redirect tree (at most 10 records) looking for a domain. */
async function treeIncludes(domain: string, target: string, client: DnsClient): Promise<{ found: boolean; trouble?: string; record?: string; missing?: boolean }> {
  const queue = [domain];
  const seen = new Set<string>();
  let top: string | undefined;
  while (queue.length && seen.size < 10) {
    const name = queue.shift()!.toLowerCase().replace(/\.$/, '');
    if (seen.has(name)) continue;
    seen.add(name);
    if (name === target) return { found: true, record: top };
    const a = await client.query(name, 'TXT');
    if (!['NOERROR', 'NXDOMAIN'].includes(a.rcode)) return { found: false, trouble: `${name}: DNS ${a.rcode}${a.error ? ` (${a.error})` : ''}` };
    const spf = recordsOf(a, 'TXT').map((r) => r.data).filter(isSpfRecord);
    if (name === domain) {
      if (spf.length === 0) return { found: false, missing: true };
      top = spf[0];
    }
    if (spf.length !== 1) continue;
    for (const term of parseRecord(spf[0]).terms) {
      // Macros cannot be followed without a message; the literal names are what matter here.
      if ((term.name === 'include' || term.name === 'redirect') && term.value && !term.value.includes('%')) queue.push(term.value);
    }
  }
  return { found: false, record: top };
}

async function addressesOf(host: string, client: DnsClient): Promise<{ ips: string[]; trouble?: string }> {
  if (isIp4Literal(host) || isIp6Literal(host)) return { ips: [host] };
  const a = await client.query(host, 'A');
  if (!['NOERROR', 'NXDOMAIN'].includes(a.rcode)) return { ips: [], trouble: `${host}: DNS ${a.rcode}` };
  return { ips: recordsOf(a, 'A').map((r) => r.data) };
}

/** Checks one domain against one sending path. */
export async function checkSendingPath(domain: string, path: SendingPath, client: DnsClient, publicIp?: string): Promise<SpfPathResult> {
  const base = { domain, path };
  if (path.kind === 'none') return { ...base, state: 'skipped', detail: path.why };
  if (path.kind === 'microsoft365') {
    const r = await treeIncludes(domain, MICROSOFT_SPF, client);
    if (r.trouble) return { ...base, state: 'could-not-check', detail: r.trouble };
    if (r.missing) return { ...base, state: 'problem', detail: `${domain} has no SPF record: add TXT "v=spf1 include:${MICROSOFT_SPF} -all"` };
    if (r.found) return { ...base, state: 'ok', detail: `SPF includes ${MICROSOFT_SPF} (${path.why})` };
    return { ...base, state: 'problem', detail: `SPF "${r.record ?? ''}" does not include ${MICROSOFT_SPF}: mail sent through Microsoft 365 fails SPF; add include:${MICROSOFT_SPF} before the all term` };
  }
  const ips = path.kind === 'relay-ip' ? { ips: publicIp ? [publicIp] : [] } : await addressesOf(path.host, client);
  if (path.kind === 'relay-ip' && !publicIp) return { ...base, state: 'skipped', detail: `${path.why}; give --public-ip to check that SPF authorises the relay's public address` };
  if ('trouble' in ips && ips.trouble) return { ...base, state: 'could-not-check', detail: ips.trouble };
  if (ips.ips.length === 0) return { ...base, state: 'skipped', detail: `${path.kind === 'smart-host' ? path.host : 'the relay'} has no address to check` };
  const ip = ips.ips[0];
  const outcome = await checkHost({ ip, sender: `postmaster@${domain}`, helo: domain }, client);
  if (outcome.result === 'pass') return { ...base, state: 'ok', detail: `SPF passes for ${ip} (${outcome.mechanism ?? 'matched'}; ${path.why})` };
  if (outcome.result === 'temperror') return { ...base, state: 'could-not-check', detail: `SPF temperror for ${ip}: ${outcome.problem ?? 'DNS error'}` };
  const words = `SPF gives "${outcome.result}" for ${ip}${outcome.problem ? ` (${outcome.problem})` : ''}`;
  if (path.kind === 'smart-host') return { ...base, state: 'warning', detail: `${words}: if ${path.host} sends from other addresses, add the include its provider documents` };
  return { ...base, state: 'problem', detail: `${words}: add ip${ip.includes(':') ? '6' : '4'}:${ip} to ${domain}'s SPF record (smarthost spf build)` };
}
