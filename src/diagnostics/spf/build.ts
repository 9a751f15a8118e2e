/**
 * `spf build`: composes an SPF record from mechanisms and presets the way an SPF wizard asks for
 * them (Microsoft 365 include, a:host, mx:domain, ip4/ip6 networks, the relay's own public address,
 * other providers' includes, an admin's preset file), optionally merged with a domain's existing
 * record, then linted. A record that fails lint is refused, and the TXT value is printed split into
 * strings of at most 255 characters, each ending at a term boundary.
 *
 * Failure: invalid terms and lint errors are returned in `refused` (plain words), never thrown;
 * DNS failures while merging or linting set `couldNotCheck`.
 */
import type { Interface as ReadlineInterface } from 'node:readline/promises';
import type { SpfResolver } from './evaluate.ts';
import { lintSpf, type LintReport } from './lint.ts';
import { isSpfRecord, parseRecord, parseTerm } from './parse.ts';

export const M365_INCLUDE = 'include:spf.protection.outlook.com';

export interface BuildOptions {
  m365?: boolean;
  a?: string[];
  mx?: string[];
  ip4?: string[];
  ip6?: string[];
  include?: string[];
  /** Extra terms, e.g. read from a preset file. */
  presetTerms?: string[];
  all?: string;
  /** Merge with the record this domain publishes now. */
  merge?: string;
  /** The domain the record is for (used by lint for bare a/mx). */
  domain?: string;
}

export interface BuildResult {
  ok: boolean;
  record: string;
  strings: string[];
  /** The TXT value as a DNS provider takes it: "…" "…". */
  txt: string;
  existing?: string;
  refused: string[];
  couldNotCheck: boolean;
  lint?: LintReport;
}

/** Reads a preset file: terms separated by spaces or lines, "#" starts a comment; v=spf1 and all are skipped. */
export function parsePresetFile(text: string): string[] {
  return text.split('\n').map((l) => l.replace(/#.*$/, '')).join(' ').split(/\s+/).filter((t) => t && !/^v=spf1$/i.test(t) && !/^[+\-~?]?all$/i.test(t));
}

/** Splits a record into strings of at most `max` octets, breaking after a space where it can. */
export function splitTxt(record: string, max = 255): string[] {
  const out: string[] = [];
  let rest = record;
  while (Buffer.byteLength(rest) > max) {
    let cut = rest.lastIndexOf(' ', max - 1);
    cut = cut <= 0 ? max : cut + 1; // keep the space at the end of this string
    out.push(rest.slice(0, cut));
    rest = rest.slice(cut);
  }
  out.push(rest);
  return out;
}

export function quoteTxt(strings: string[]): string {
  return strings.map((s) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`).join(' ');
}

export async function buildSpf(options: BuildOptions, resolver: SpfResolver): Promise<BuildResult> {
  const refused: string[] = [];
  const terms: string[] = [];
  const push = (term: string): void => {
    if (!terms.some((t) => t.toLowerCase() === term.toLowerCase())) terms.push(term);
  };
  let existing: string | undefined;
  let existingAll: string | undefined;
  let couldNotCheck = false;

  if (options.merge) {
    const answer = await resolver.query(options.merge, 'TXT');
    if (answer.rcode !== 'NOERROR' && answer.rcode !== 'NXDOMAIN') {
      couldNotCheck = true;
      refused.push(`the current record of ${options.merge} could not be read: ${answer.rcode}${answer.error ? ` (${answer.error})` : ''}`);
    } else {
      const spf = answer.answers.filter((r) => r.type === 'TXT').map((r) => String(r.data)).filter(isSpfRecord);
      if (spf.length > 1) refused.push(`${options.merge} publishes ${spf.length} SPF records; fix that first (they must be merged by hand)`);
      existing = spf[0];
      for (const t of existing ? parseRecord(existing).terms : []) {
        if (t.kind === 'mechanism' && t.name === 'all') existingAll = t.text;
        else if (t.kind === 'modifier' && t.name === 'redirect') refused.push(`the current record uses ${t.text}; merge by editing the target's record instead`);
        else push(t.text);
      }
    }
  }

  for (const ip of options.ip4 ?? []) push(`ip4:${ip}`);
  for (const ip of options.ip6 ?? []) push(`ip6:${ip}`);
  for (const host of options.a ?? []) push(`a:${host}`);
  for (const domain of options.mx ?? []) push(`mx:${domain}`);
  if (options.m365) push(M365_INCLUDE);
  for (const domain of options.include ?? []) push(`include:${domain}`);
  for (const term of options.presetTerms ?? []) push(term);

  const all = options.all ?? existingAll ?? '-all';
  if (!/^[+\-~?]?all$/i.test(all)) refused.push(`"${all}" is not one of -all, ~all, ?all`);
  for (const term of terms) {
    const parsed = parseTerm(term);
    if (parsed.error) refused.push(`"${term}": ${parsed.error}${parsed.suggestion ? ` (${parsed.suggestion})` : ''}`);
  }
  if (terms.length === 0) refused.push('no senders given: add --m365, --ip4, --a, --mx, --include or a preset file');

  const record = ['v=spf1', ...terms, all].join(' ');
  const strings = splitTxt(record);
  const result: BuildResult = { ok: false, record, strings, txt: quoteTxt(strings), existing, refused, couldNotCheck };
  if (refused.length > 0) return result;

  const lint = await lintSpf({ record, strings, domain: options.domain ?? options.merge }, resolver);
  result.lint = lint;
  if (lint.couldNotCheck) result.couldNotCheck = true;
  for (const f of lint.findings) if (f.severity === 'error') refused.push(`${f.id} ${f.message}`);
  result.ok = refused.length === 0;
  return result;
}

/** The wizard's questions, asked on a terminal; answers become BuildOptions. */
export async function promptBuildOptions(rl: ReadlineInterface): Promise<BuildOptions> {
  const list = (answer: string): string[] => answer.split(/[\s,]+/).filter(Boolean);
  const yes = (answer: string, dflt: boolean): boolean => (answer.trim() === '' ? dflt : /^y/i.test(answer.trim()));
  const options: BuildOptions = {};
  options.domain = (await rl.question('Domain the record is for (e.g. contoso.com): ')).trim() || undefined;
  if (options.domain && yes(await rl.question(`Merge with the record ${options.domain} publishes now? [y/N] `), false)) options.merge = options.domain;
  options.m365 = yes(await rl.question('Does the domain send through Microsoft 365 (Exchange Online)? [Y/n] '), true);
  const direct = list(await rl.question('Does the relay deliver straight to recipients? Its public IPv4/IPv6 address(es), or Enter for none: '));
  options.ip4 = direct.filter((a) => !a.includes(':'));
  options.ip6 = direct.filter((a) => a.includes(':'));
  options.a = list(await rl.question('Other servers by host name (a:), or Enter: '));
  options.mx = list(await rl.question('Domains whose MX servers send mail (mx:), or Enter: '));
  const more = list(await rl.question('Other IPv4/IPv6 addresses or networks (CIDR), or Enter: '));
  options.ip4.push(...more.filter((a) => !a.includes(':')));
  options.ip6.push(...more.filter((a) => a.includes(':')));
  options.include = list(await rl.question('Other providers that publish SPF (include: domain), or Enter: '));
  const strict = (await rl.question('Is that every server that sends as this domain? Reject others (-all) or only mark them (~all)? [-all] ')).trim();
  options.all = strict === '' ? '-all' : strict;
  return options;
}
