/**
 * `dns m365`: checks every DNS record Microsoft 365 asks a custom domain for (expected.ts) and
 * says, for each, what was found, what was expected, its state and the fix:
 *
 *   present          the record is there and right
 *   missing          no such record (NXDOMAIN, or the name exists without that type)
 *   wrong            a record is there but not what Microsoft 365 needs (or must not exist)
 *   could-not-check  DNS did not answer usably (timeout, SERVFAIL, REFUSED, network error):
 *                    never reported as "missing"
 *
 * The DNS client is injected (diagnostics/dns/client.ts), so tests and the console can point it at
 * any server. Queries run in parallel; the function never throws for DNS reasons.
 */
import { SmarthostError } from '../../core/errors.ts';
import { recordsOf, type DnsAnswer, type DnsClient, type DnsType } from '../dns/client.ts';
import { LEGACY_RECORDS, MICROSOFT_MX, RETIRED_MX, dkimExampleTarget, dkimTargetPattern, legacyMxTarget, type Importance, type LegacyRecord } from './expected.ts';

export type RecordState = 'present' | 'missing' | 'wrong' | 'could-not-check';

export interface M365RecordCheck {
  id: string;
  label: string;
  name: string;
  type: DnsType;
  importance: Importance;
  state: RecordState;
  expected: string;
  found: string[];
  /** True when this record's state is a problem to fix (depends on importance). */
  problem: boolean;
  /** What the state means, in words. */
  detail: string;
  /** What to change at the DNS host, when something should change. */
  fix?: string;
}

export interface M365DnsReport {
  domain: string;
  checks: M365RecordCheck[];
  summary: { problems: number; couldNotCheck: number; line: string };
}

export interface M365DnsOptions {
  /** The tenant's initial domain prefix (contoso for contoso.onmicrosoft.com): makes DKIM checks exact. */
  tenantPrefix?: string;
  /** The verification value from the admin center (MS=ms12345678). */
  verification?: string;
  /** The exact MX value from the admin center, when known (otherwise any Microsoft MX form is accepted). */
  mx?: string;
}

const UNUSABLE = new Set(['TIMEOUT', 'NETERROR', 'SERVFAIL', 'REFUSED', 'BADNAME', 'FORMERR', 'NOTIMP']);

/** Normalises a domain: lower case, no trailing dot, IDN → A-labels. */
export function normalizeDomain(domain: string): string {
  const trimmed = domain.trim().replace(/\.$/, '').toLowerCase();
  let ascii = '';
  try {
    ascii = new URL(`http://${trimmed}`).hostname;
  } catch {
    // handled below
  }
  if (!ascii || ascii !== ascii.replace(/[^a-z0-9.-]/g, '') || !ascii.includes('.')) {
    throw new SmarthostError('SH_USAGE', `"${domain}" is not a domain name (expected something like contoso.com)`);
  }
  return ascii;
}

function dnsTrouble(a: DnsAnswer): string | undefined {
  if (UNUSABLE.has(a.rcode) || !['NOERROR', 'NXDOMAIN'].includes(a.rcode)) {
    return a.rcode === 'TIMEOUT' ? `DNS timeout (${a.error ?? a.server})` : a.rcode === 'SERVFAIL' ? `the resolver ${a.server} answered SERVFAIL (it could not get an answer from the domain's servers)` : `DNS ${a.rcode}${a.error ? `: ${a.error}` : ` from ${a.server}`}`;
  }
  return undefined;
}

const host = (s: string): string => s.toLowerCase().replace(/\.$/, '');

/** Checks every Microsoft 365 record of the domain. */
export async function checkM365Dns(domainInput: string, client: DnsClient, options: M365DnsOptions = {}): Promise<M365DnsReport> {
  const domain = normalizeDomain(domainInput);
  const checks = await Promise.all([
    checkVerification(domain, client, options),
    checkMx(domain, client, options),
    checkCname(domain, client, { id: 'autodiscover', label: 'Autodiscover', name: 'autodiscover', importance: 'required', expected: 'autodiscover.outlook.com', why: 'Outlook finds the mailbox settings through it' }),
    checkSpf(domain, client),
    checkDkim(domain, client, 1, options.tenantPrefix),
    checkDkim(domain, client, 2, options.tenantPrefix),
    checkDmarc(domain, client),
    ...LEGACY_RECORDS.map((r) => (r.type === 'CNAME' ? checkCname(domain, client, r) : checkSrv(domain, client, r))),
    checkMsoid(domain, client),
  ]);
  const problems = checks.filter((c) => c.problem).length;
  const couldNotCheck = checks.filter((c) => c.state === 'could-not-check').length;
  const line = problems > 0
    ? `${problems} record(s) to fix for Microsoft 365${couldNotCheck ? `; ${couldNotCheck} could not be checked` : ''}`
    : couldNotCheck > 0 ? `${couldNotCheck} record(s) could not be checked (DNS did not answer); the rest are fine` : 'every record Microsoft 365 needs is in place';
  return { domain, checks, summary: { problems, couldNotCheck, line } };
}

function result(base: Omit<M365RecordCheck, 'problem'>): M365RecordCheck {
  const { state, importance } = base;
  let problem: boolean;
  if (importance === 'must-not-exist') problem = state === 'wrong';
  else if (state === 'could-not-check' || state === 'present') problem = false;
  else if (state === 'wrong') problem = true;
  else problem = importance === 'required' || importance === 'recommended';
  return { ...base, problem };
}

function fqdn(domain: string, label: string): string {
  return label === '@' ? domain : `${label}.${domain}`;
}

async function checkVerification(domain: string, client: DnsClient, options: M365DnsOptions): Promise<M365RecordCheck> {
  const a = await client.query(domain, 'TXT');
  const expected = options.verification ?? 'MS=ms followed by digits (from the admin center)';
  const base = { id: 'verification', label: 'Domain verification', name: domain, type: 'TXT' as const, importance: (options.verification ? 'required' : 'conditional') as Importance, expected };
  const trouble = dnsTrouble(a);
  if (trouble) return result({ ...base, state: 'could-not-check', found: [], detail: trouble });
  const found = recordsOf(a, 'TXT').map((r) => r.data).filter((t) => /^MS=/i.test(t));
  const fix = `add TXT @ "${options.verification ?? 'MS=msXXXXXXXX'}" (TTL 3600), then press Verify in the admin center`;
  if (options.verification) {
    if (found.some((t) => t === options.verification)) return result({ ...base, state: 'present', found, detail: 'the verification value is published; it may be removed once the domain is verified' });
    if (found.length) return result({ ...base, state: 'wrong', found, detail: 'an MS=ms value is published, but not the one given', fix: `replace it with TXT @ "${options.verification}"` });
    return result({ ...base, state: 'missing', found, detail: 'the verification TXT is not published', fix });
  }
  if (found.length) return result({ ...base, state: 'present', found, detail: 'a verification value is published; it may be removed once the domain is verified' });
  return result({ ...base, state: 'missing', found, detail: 'no MS=ms TXT: only needed while adding the domain (verified domains may delete it)', fix });
}

async function checkMx(domain: string, client: DnsClient, options: M365DnsOptions): Promise<M365RecordCheck> {
  const a = await client.query(domain, 'MX');
  const legacy = legacyMxTarget(domain);
  const expected = options.mx ?? `${legacy} (or the newer <domain-dashes>.<x>-v1.mx.microsoft), priority 0`;
  const base = { id: 'mx', label: 'MX (inbound mail)', name: domain, type: 'MX' as const, importance: 'required' as Importance, expected };
  const trouble = dnsTrouble(a);
  if (trouble) return result({ ...base, state: 'could-not-check', found: [], detail: trouble });
  const mx = recordsOf(a, 'MX').map((r) => ({ pref: r.data.preference, host: host(r.data.exchange) }));
  const found = mx.map((m) => `${m.pref} ${m.host}`);
  const fixValue = options.mx ?? legacy;
  if (mx.length === 0) return result({ ...base, state: 'missing', found, detail: 'the domain has no MX record: nobody can send it mail', fix: `add MX @ ${fixValue} priority 0 (copy the exact value from the admin center)` });
  const retired = mx.filter((m) => RETIRED_MX.test(m.host));
  if (retired.length) return result({ ...base, state: 'wrong', found, detail: `${retired.map((m) => m.host).join(', ')} is a retired pre-2018 Microsoft MX: senders get "451 4.4.62 Mail sent to the wrong Office 365 region"`, fix: `replace it with MX @ ${fixValue} priority 0` });
  const ours = mx.filter((m) => (options.mx ? m.host === host(options.mx) : MICROSOFT_MX.test(m.host)));
  const others = mx.filter((m) => !ours.includes(m));
  if (ours.length === 0) {
    const near = mx.find((m) => MICROSOFT_MX.test(m.host));
    return result({ ...base, state: 'wrong', found, detail: near ? `MX points to Microsoft 365 (${near.host}) but not to the value given` : 'MX points elsewhere: mail for this domain does not reach Microsoft 365 (fine only while a migration is not cut over)', fix: `set MX @ ${fixValue} priority 0 and remove the others` });
  }
  if (others.length) {
    return result({ ...base, state: 'wrong', found, detail: `besides Microsoft 365, MX also lists ${others.map((m) => m.host).join(', ')}: part of the mail would go there`, fix: `remove the other MX records (${others.map((m) => m.host).join(', ')})` });
  }
  const note = !options.mx && ours[0].host !== legacy && ours[0].host.endsWith('.mail.protection.outlook.com')
    ? `; it is not the usual ${legacy}: check it against the admin center` : '';
  return result({ ...base, state: 'present', found, detail: `MX points to Microsoft 365${ours[0].host.endsWith('.mx.microsoft') ? ' (DNSSEC-capable mx.microsoft form)' : ''}${note}` });
}

interface CnameSpec { id: string; label: string; name: string; importance: Importance; expected: string; alternatives?: string[]; why: string }

async function checkCname(domain: string, client: DnsClient, spec: CnameSpec | LegacyRecord): Promise<M365RecordCheck> {
  const name = fqdn(domain, spec.name);
  const base = { id: spec.id, label: spec.label, name, type: 'CNAME' as const, importance: spec.importance, expected: spec.expected };
  const a = await client.query(name, 'CNAME');
  const trouble = dnsTrouble(a);
  if (trouble) return result({ ...base, state: 'could-not-check', found: [], detail: trouble });
  const found = recordsOf(a, 'CNAME').map((r) => host(r.data));
  const accepted = [spec.expected, ...(spec.alternatives ?? [])];
  const fix = `add CNAME ${spec.name} → ${spec.expected} (TTL 3600)`;
  if (found.length === 0) {
    // Something else at the name (an A record of an on-premises Exchange, say) is "wrong", not "missing".
    const addr = await client.query(name, 'A');
    const addrs = dnsTrouble(addr) ? [] : recordsOf(addr, 'A').map((r) => `A ${r.data}`);
    if (addrs.length) return result({ ...base, state: 'wrong', found: addrs, detail: `${name} has an address record instead of the CNAME (${spec.why})`, fix: `replace the A record with CNAME ${spec.name} → ${spec.expected}` });
    return result({ ...base, state: 'missing', found, detail: `no CNAME at ${name} (${spec.why})`, fix: spec.importance === 'optional' || spec.importance === 'conditional' ? `only if you need it: ${fix}` : fix });
  }
  if (found.some((f) => accepted.includes(f))) return result({ ...base, state: 'present', found, detail: spec.why });
  return result({ ...base, state: 'wrong', found, detail: `${name} points to ${found.join(', ')}, not ${spec.expected} (${spec.why})`, fix: `change CNAME ${spec.name} to ${spec.expected}` });
}

async function checkSrv(domain: string, client: DnsClient, spec: LegacyRecord): Promise<M365RecordCheck> {
  const name = fqdn(domain, spec.name);
  const base = { id: spec.id, label: spec.label, name, type: 'SRV' as const, importance: spec.importance, expected: spec.expected };
  const a = await client.query(name, 'SRV');
  const trouble = dnsTrouble(a);
  if (trouble) return result({ ...base, state: 'could-not-check', found: [], detail: trouble });
  const srv = recordsOf(a, 'SRV').map((r) => ({ ...r.data, target: host(r.data.target) }));
  const found = srv.map((s) => `${s.priority} ${s.weight} ${s.port} ${s.target}`);
  const [, , port, target] = spec.expected.split(' ');
  if (srv.length === 0) return result({ ...base, state: 'missing', found, detail: spec.why, fix: `only if you need it: add SRV ${spec.name} ${spec.expected}` });
  if (srv.some((s) => s.target === target && String(s.port) === port)) return result({ ...base, state: 'present', found, detail: spec.why });
  return result({ ...base, state: 'wrong', found, detail: `${name} points to ${found.join(', ')}, not ${spec.expected} (${spec.why})`, fix: `change SRV ${spec.name} to ${spec.expected}, or delete it if Skype for Business is not used` });
}

async function checkSpf(domain: string, client: DnsClient): Promise<M365RecordCheck> {
  const a = await client.query(domain, 'TXT');
  const base = { id: 'spf', label: 'SPF', name: domain, type: 'TXT' as const, importance: 'required' as Importance, expected: 'v=spf1 include:spf.protection.outlook.com -all (plus your relay\'s ip4: for direct send/connectors)' };
  const trouble = dnsTrouble(a);
  if (trouble) return result({ ...base, state: 'could-not-check', found: [], detail: trouble });
  const found = recordsOf(a, 'TXT').map((r) => r.data).filter((t) => /^v=spf1(\s|$)/i.test(t));
  if (found.length === 0) return result({ ...base, state: 'missing', found, detail: 'no SPF record: receivers cannot tell which servers may send as this domain', fix: 'add TXT @ "v=spf1 include:spf.protection.outlook.com -all" (or build one: smarthost spf build)' });
  if (found.length > 1) return result({ ...base, state: 'wrong', found, detail: 'more than one SPF record: receivers treat that as a permanent error (RFC 7208 §4.5), as if there were none', fix: 'merge them into one TXT record (smarthost spf build --merge)' });
  const terms = found[0].toLowerCase().split(/\s+/);
  const hasInclude = terms.some((t) => /^[+]?include:spf\.protection\.outlook\.com\.?$/.test(t)) || terms.some((t) => /^redirect=spf\.protection\.outlook\.com\.?$/.test(t));
  if (!hasInclude) return result({ ...base, state: 'wrong', found, detail: 'the SPF record does not include spf.protection.outlook.com: mail sent by Microsoft 365 fails SPF', fix: 'add include:spf.protection.outlook.com before the all term' });
  const all = terms.find((t) => /^[-~?+]?all$/.test(t));
  const weak = all === '+all' || all === 'all' ? ' — but "+all" lets anyone send as the domain' : all === '?all' ? ' — but "?all" makes no statement about other senders' : '';
  if (weak) return result({ ...base, state: 'wrong', found, detail: `includes Microsoft 365${weak}`, fix: 'end the record with -all (or ~all while testing)' });
  return result({ ...base, state: 'present', found, detail: `includes Microsoft 365 and ends with ${all ?? '(no all term: unlisted senders get "neutral")'}; run "smarthost spf lint ${domain}" for the lookup count` });
}

async function checkDkim(domain: string, client: DnsClient, selector: 1 | 2, tenantPrefix?: string): Promise<M365RecordCheck> {
  const name = `selector${selector}._domainkey.${domain}`;
  const example = dkimExampleTarget(domain, selector, tenantPrefix);
  const base = { id: `dkim-selector${selector}`, label: `DKIM selector${selector}`, name, type: 'CNAME' as const, importance: 'recommended' as Importance, expected: `${example} (or the newer …${tenantPrefix ? `.${tenantPrefix}` : ''}.<x>-v1.dkim.mail.microsoft form; copy it from Defender or Get-DkimSigningConfig)` };
  const a = await client.query(name, 'CNAME');
  const trouble = dnsTrouble(a);
  if (trouble) return result({ ...base, state: 'could-not-check', found: [], detail: trouble });
  const found = recordsOf(a, 'CNAME').map((r) => host(r.data));
  const fix = `add CNAME selector${selector}._domainkey → ${example}, then enable DKIM signing for the domain in Defender`;
  if (found.length === 0) {
    const txt = await client.query(name, 'TXT');
    const keys = dnsTrouble(txt) ? [] : recordsOf(txt, 'TXT').map((r) => r.data).filter((t) => /p=/.test(t));
    if (keys.length) return result({ ...base, state: 'wrong', found: keys.map((k) => `TXT ${k.slice(0, 60)}…`), detail: 'a DKIM key of another signer is published at this selector; Microsoft 365 signing needs the CNAME', fix });
    return result({ ...base, state: 'missing', found, detail: 'no DKIM CNAME: Microsoft 365 cannot sign as this domain, so DMARC relies on SPF alone', fix });
  }
  if (found.some((f) => dkimTargetPattern(domain, selector, tenantPrefix).test(f))) return result({ ...base, state: 'present', found, detail: 'points to Microsoft 365\'s DKIM key' });
  const otherSelector = found.some((f) => dkimTargetPattern(domain, selector === 1 ? 2 : 1, tenantPrefix).test(f));
  return result({ ...base, state: 'wrong', found, detail: otherSelector ? `selector${selector} points to selector${selector === 1 ? 2 : 1}'s key: rotation will break` : `points to ${found.join(', ')}, not Microsoft 365's DKIM key for this domain${tenantPrefix ? ` in tenant ${tenantPrefix}` : ''} (Defender reports CnameMissing)`, fix });
}

async function checkDmarc(domain: string, client: DnsClient): Promise<M365RecordCheck> {
  const name = `_dmarc.${domain}`;
  const base = { id: 'dmarc', label: 'DMARC', name, type: 'TXT' as const, importance: 'recommended' as Importance, expected: 'v=DMARC1; p=none|quarantine|reject; rua=mailto:…' };
  const a = await client.query(name, 'TXT');
  const trouble = dnsTrouble(a);
  if (trouble) return result({ ...base, state: 'could-not-check', found: [], detail: trouble });
  const found = recordsOf(a, 'TXT').map((r) => r.data).filter((t) => /^v=DMARC1/i.test(t));
  const fix = `add TXT _dmarc "v=DMARC1; p=none; rua=mailto:dmarc-reports@${domain}", then move to p=quarantine and p=reject once reports are clean`;
  if (found.length === 0) return result({ ...base, state: 'missing', found, detail: 'no DMARC policy: receivers decide on their own what to do with mail failing SPF and DKIM', fix });
  if (found.length > 1) return result({ ...base, state: 'wrong', found, detail: 'more than one DMARC record: receivers ignore them all (RFC 7489 §6.6.3)', fix: 'keep exactly one v=DMARC1 record' });
  const policy = /(?:^|;)\s*p\s*=\s*(none|quarantine|reject)\s*(?:;|$)/i.exec(found[0])?.[1]?.toLowerCase();
  if (!policy) return result({ ...base, state: 'wrong', found, detail: 'the DMARC record has no valid p= tag (none, quarantine or reject), so it is ignored', fix: 'add "p=none" (or quarantine/reject) right after v=DMARC1' });
  const words = policy === 'none' ? 'monitoring only (p=none): failing mail is still delivered' : `p=${policy}: mail failing DMARC is ${policy === 'reject' ? 'refused' : 'sent to junk'}; Microsoft 365 routes its own failing outbound mail through the high-risk pool`;
  return result({ ...base, state: 'present', found, detail: words });
}

async function checkMsoid(domain: string, client: DnsClient): Promise<M365RecordCheck> {
  const name = `msoid.${domain}`;
  const base = { id: 'msoid', label: 'msoid (21Vianet only)', name, type: 'CNAME' as const, importance: 'must-not-exist' as Importance, expected: 'no record (it belongs to Microsoft 365 operated by 21Vianet in China)' };
  const a = await client.query(name, 'CNAME');
  const trouble = dnsTrouble(a);
  if (trouble) return result({ ...base, state: 'could-not-check', found: [], detail: trouble });
  const found = recordsOf(a, 'CNAME').map((r) => host(r.data));
  if (found.length === 0) return result({ ...base, state: 'missing', found, detail: 'absent, as it should be on a worldwide tenant' });
  return result({ ...base, state: 'wrong', found, detail: 'an msoid CNAME on a worldwide tenant makes sign-in and Office activation fail ("custom domain isn\'t in our system")', fix: `delete CNAME msoid (unless the tenant is operated by 21Vianet)` });
}
