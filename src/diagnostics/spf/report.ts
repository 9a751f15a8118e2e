/**
 * Readable reports and stable JSON shapes for `spf lint`, `spf check` and `spf build`, plus the exit
 * code each outcome maps to: 0 all good, 1 problems found, 3 could not check (DNS failed).
 * Pure functions: the CLI prints them, the web console can return the JSON as is.
 */
import type { BuildResult } from './build.ts';
import type { CheckHostOutcome } from './evaluate.ts';
import type { SpfExplanation } from './explain.ts';
import type { LintReport } from './lint.ts';
import { authenticationResultsSpf, receivedSpfHeader, receivedSpfValue } from './received.ts';

export const EXIT_OK = 0;
export const EXIT_PROBLEMS = 1;
export const EXIT_COULD_NOT_CHECK = 3;

export function lintJson(r: LintReport): Record<string, unknown> {
  return {
    target: r.target, domain: r.domain ?? null, record: r.record ?? null, strings: r.strings ?? null,
    lookups: r.lookups, voidLookups: r.voidLookups, errors: r.errors, warnings: r.warnings, couldNotCheck: r.couldNotCheck,
    findings: r.findings.map((f) => ({ id: f.id, rule: f.rule, severity: f.severity, domain: f.domain, message: f.message, term: f.term ?? null, start: f.start ?? null, end: f.end ?? null, fix: f.fix ?? null })),
  };
}

export function lintExitCode(r: LintReport): number {
  if (r.couldNotCheck) return EXIT_COULD_NOT_CHECK;
  return r.errors + r.warnings > 0 ? EXIT_PROBLEMS : EXIT_OK;
}

export function renderLint(r: LintReport): string {
  const lines = [`SPF lint of ${r.target}`];
  if (r.record) lines.push(`  record: "${r.record}"`);
  lines.push(`  DNS-querying terms: ${r.lookups}/10, void lookups: ${r.voidLookups}/2`, '');
  const marks = { error: 'ERROR  ', warning: 'WARNING', info: 'info   ' } as const;
  for (const f of r.findings) {
    const inRoot = f.domain === r.tree.root.domain;
    lines.push(`${marks[f.severity]} ${f.id} ${f.rule}${inRoot ? '' : ` [in the record of ${f.domain}]`}: ${f.message}`);
    if (f.start !== undefined && r.record && inRoot) {
      lines.push(`          ${r.record}`, `          ${' '.repeat(f.start)}${'^'.repeat(Math.max(1, (f.end ?? f.start + 1) - f.start))}`);
    }
    if (f.fix) lines.push(`          fix: ${f.fix}`);
  }
  if (r.findings.length === 0) lines.push('No problems found.');
  lines.push('', r.couldNotCheck ? 'Could not check everything: a DNS query failed (see above).' : `${r.errors} error(s), ${r.warnings} warning(s).`);
  return lines.join('\n');
}

export function checkJson(o: CheckHostOutcome, authservId = o.receiver): Record<string, unknown> {
  return {
    result: o.result, explanation: o.explanation ?? null, mechanism: o.mechanism ?? null, problem: o.problem ?? null,
    identity: o.identity, domain: o.domain, sender: o.sender, ip: o.ip, helo: o.helo, receiver: o.receiver,
    lookups: o.lookups, voidLookups: o.voidLookups,
    receivedSpf: `Received-SPF: ${receivedSpfValue(o)}`, authenticationResults: authenticationResultsSpf(o, authservId), trace: o.trace,
  };
}

export function checkExitCode(o: CheckHostOutcome): number {
  if (o.result === 'temperror') return EXIT_COULD_NOT_CHECK;
  return o.result === 'pass' ? EXIT_OK : EXIT_PROBLEMS;
}

/** Each SPF result in words, for the CLI and the console alike. */
export const SPF_RESULT_MEANING: Record<string, string> = {
  pass: 'the client is authorized to send for this domain',
  fail: 'the domain says this client is NOT authorized: receivers may reject or junk the message',
  softfail: 'the domain says this client is probably not authorized: receivers usually junk the message',
  neutral: 'the domain makes no statement about this client',
  none: 'the domain publishes no SPF record (or the name is not a domain)',
  permerror: 'the record is broken: receivers treat this like a failure or ignore SPF',
  temperror: 'a DNS failure stopped the check: receivers usually defer the message (try again later)',
};

export function renderCheck(o: CheckHostOutcome): string {
  const lines = [
    `SPF check_host(${o.ip}, ${o.domain}, ${o.sender}) → ${o.result.toUpperCase()}`,
    `  meaning: ${SPF_RESULT_MEANING[o.result]}`,
  ];
  if (o.mechanism) lines.push(`  decided by: ${o.mechanism}`);
  if (o.problem) lines.push(`  problem: ${o.problem}`);
  if (o.explanation) lines.push(`  explanation: ${o.explanation}`);
  lines.push(`  DNS-querying terms: ${o.lookups}, void lookups: ${o.voidLookups}`, '', 'Steps:', ...o.trace.map((t) => `  ${t}`), '', receivedSpfHeader(o).replace(/\r\n/g, '\n'));
  return lines.join('\n');
}

export function explainJson(e: SpfExplanation): SpfExplanation {
  return e;
}

export function explainExitCode(e: SpfExplanation): number {
  if (e.dnsErrors.length > 0) return EXIT_COULD_NOT_CHECK;
  const bad = (n: SpfExplanation['root']): boolean => Boolean(n.problem) || n.terms.some((t) => t.error || (t.child && bad(t.child)));
  return bad(e.root) || e.lookups > 10 || e.voidLookups > 2 ? EXIT_PROBLEMS : EXIT_OK;
}

export function buildJson(b: BuildResult): Record<string, unknown> {
  return {
    ok: b.ok, record: b.record, strings: b.strings, txt: b.txt, existing: b.existing ?? null, refused: b.refused, couldNotCheck: b.couldNotCheck,
    lint: b.lint ? lintJson(b.lint) : null,
  };
}

export function buildExitCode(b: BuildResult): number {
  if (b.couldNotCheck) return EXIT_COULD_NOT_CHECK;
  return b.ok ? EXIT_OK : EXIT_PROBLEMS;
}

export function renderBuild(b: BuildResult): string {
  const lines: string[] = [];
  if (b.existing) lines.push(`Current record: "${b.existing}"`);
  lines.push(`Record: ${b.record}`, `Length: ${b.record.length} characters in ${b.strings.length} string(s)`);
  if (b.ok) {
    lines.push('', 'Publish this TXT value at the domain (replace the old v=spf1 record, keep only one):', b.txt);
    for (const f of b.lint?.findings ?? []) lines.push(`  note (${f.id} ${f.rule}): ${f.message}`);
  } else {
    lines.push('', 'REFUSED: this record would not work:', ...b.refused.map((r) => `  - ${r}`));
  }
  return lines.join('\n');
}
