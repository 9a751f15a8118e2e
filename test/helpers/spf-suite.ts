/**
 * Loads the openspf/pyspf SPF conformance suites (RFC 7208, RFC 4408): from Debian's python3-spf
 * documentation (gzipped, so a fresh clone finds them once scripts/test.sh installed the package),
 * else from ../shared/conformance/spf/. Throws when neither is there: a missing suite must fail.
 */
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { Zone } from './dns-server.ts';

export interface SuiteTest {
  id: string;
  scenario: string;
  host: string;
  helo: string;
  mailfrom: string;
  /** Acceptable results, preferred first. */
  results: string[];
  explanation?: string;
}

export interface SuiteScenario { description: string; zone: Zone; tests: SuiteTest[] }

export function loadSuite(name: 'rfc7208' | 'rfc4408'): { source: string; scenarios: SuiteScenario[] } {
  const debian = `/usr/share/doc/python3-spf/${name}-tests.yml.gz`;
  const shared = path.resolve(import.meta.dirname, '../../../shared/conformance/spf', `${name}-tests.yml`);
  let text: string;
  let source: string;
  if (existsSync(debian)) {
    text = gunzipSync(readFileSync(debian)).toString('utf8');
    source = debian;
  } else if (existsSync(shared)) {
    text = readFileSync(shared, 'utf8');
    source = shared;
  } else {
    throw new Error(`the ${name} SPF suite is missing: install Debian's python3-spf (scripts/test.sh does) or provide ${shared}`);
  }
  const scenarios: SuiteScenario[] = [];
  for (const doc of parseAllDocuments(text)) {
    const data = doc.toJS() as { description: string; tests: Record<string, Record<string, unknown>>; zonedata?: Zone } | null;
    if (!data) continue;
    const tests = Object.entries(data.tests).map(([id, t]) => ({
      id,
      scenario: data.description,
      host: String(t.host),
      helo: t.helo === undefined || t.helo === null ? '' : String(t.helo),
      mailfrom: t.mailfrom === undefined || t.mailfrom === null ? '' : String(t.mailfrom),
      results: (Array.isArray(t.result) ? t.result : [t.result]).map(String),
      explanation: t.explanation === undefined ? undefined : String(t.explanation),
    }));
    scenarios.push({ description: data.description, zone: data.zonedata ?? {}, tests });
  }
  return { source, scenarios };
}
