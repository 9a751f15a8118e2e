// Directory-sync filter: GUID validation and byte order (checked against Python's uuid bytes_le),
// CSV and LDIF input, and XML that a real parser (fast-xml-parser) reads back with the same GUIDs
// and names, whatever the names contain.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { buildDirsyncFilter, commentTextToName } from '../../src/admin/dirsync.ts';
import { guidFromBase64, guidToBytes, parseGuidText } from '../../src/admin/guid.ts';
import { formatCsv } from '../../src/admin/csv.ts';

const HOSTILE = ['Smith -- the elder', 'Tom & Jerry', 'a<b>c', 'end]]>', '"quoted" \'single\'', 'Zoë Ærøskøbing 日本 🎉', 'trailing-', '---', '&#45;literal', 'line\nbreak', '<!-- nested -->'];

function randomGuid(i: number): string {
  const hex = (n: number, len: number): string => n.toString(16).padStart(len, '0').slice(-len);
  return `${hex(0x9030057d + i * 7919, 8)}-${hex(0xd403 + i, 4)}-4${hex(i * 31, 3)}-8${hex(i * 17, 3)}-${hex(0xa643fc36 + i, 8)}${hex(i, 4)}`;
}

/** Reads the XML back with a real parser: every ExcludedDN GUID and the comment before it. */
function readBack(xml: string): { guid: string; name: string }[] {
  assert.equal(XMLValidator.validate(xml), true, 'the XML is well-formed');
  const parser = new XMLParser({ preserveOrder: true, commentPropName: '#comment', ignoreDeclaration: true });
  const doc = parser.parse(xml) as Record<string, unknown>[];
  const root = doc.find((n) => 'DirectorySyncFilters' in n)!.DirectorySyncFilters as Record<string, unknown>[];
  const out: { guid: string; name: string }[] = [];
  let pendingName = '';
  for (const node of root) {
    if ('#comment' in node) pendingName = String((node['#comment'] as { '#text': string }[])[0]['#text']).replace(/^ | $/g, '');
    if ('ExcludedDN' in node) {
      const text = String((node.ExcludedDN as { '#text': string }[])[0]['#text']);
      const m = /^CN=\{([0-9a-f-]{36})\}$/.exec(text);
      assert.ok(m, `ExcludedDN ${text} has the CN={guid} form`);
      out.push({ guid: m[1], name: commentTextToName(pendingName) });
      pendingName = '';
    }
  }
  return out;
}

test('GUID text forms are validated with plain-words reasons', () => {
  assert.deepEqual(parseGuidText('{9030057D-D403-4590-8C3B-A643FC36DF3D}'), { ok: true, guid: '9030057d-d403-4590-8c3b-a643fc36df3d' });
  for (const bad of ['', 'not-a-guid', '9030057d-d403-4590-8c3b-a643fc36df3', '9030057dd40345908c3ba643fc36df3d', '9030057d-d403-4590-8c3b-a643fc36df3g']) {
    const r = parseGuidText(bad);
    assert.equal(r.ok, false, bad);
    assert.ok(!r.ok && r.reason.length > 10);
  }
});

test('binary objectGUID uses Microsoft byte order (same as Python uuid bytes_le)', () => {
  for (let i = 0; i < 5; i++) {
    const b64 = Buffer.from(Array.from({ length: 16 }, (_, j) => (i * 37 + j * 11 + 3) & 0xff)).toString('base64');
    const ours = guidFromBase64(b64);
    const python = execFileSync('python3', ['-c', 'import base64,sys,uuid; print(uuid.UUID(bytes_le=base64.b64decode(sys.argv[1])))', b64], { encoding: 'utf8' }).trim();
    assert.deepEqual(ours, { ok: true, guid: python });
    assert.equal(Buffer.from(guidToBytes(python)).toString('base64'), b64);
  }
  // The seed's first GUID, from its bytes as AD stores them.
  assert.deepEqual(guidFromBase64(Buffer.from('7d05309003d490458c3ba643fc36df3d', 'hex').toString('base64')), { ok: true, guid: '9030057d-d403-4590-8c3b-a643fc36df3d' });
  assert.equal(guidFromBase64('AAAA').ok, false);
});

test('hostile names from CSV: a real XML parser reads back the same GUIDs and names', () => {
  const rows = HOSTILE.map((name, i) => [name, `{${randomGuid(i)}}`]);
  const csv = formatCsv([['Name', 'ObjectGUID'], ...rows]);
  const result = buildDirsyncFilter(`#TYPE Microsoft.ActiveDirectory.Management.ADUser\r\n${csv}`);
  assert.equal(result.format, 'csv');
  assert.deepEqual(result.problems, []);
  const comments = [...result.xml.matchAll(/<!--([\s\S]*?)-->/g)].map((m) => m[1]);
  assert.equal(comments.length, HOSTILE.length);
  for (const c of comments) assert.ok(!c.includes('--') && !c.endsWith('-') && !/[\r\n]/.test(c), `comment text ${c} is XML-safe and on one line`);
  const back = readBack(result.xml);
  assert.deepEqual(back, HOSTILE.map((name, i) => ({ guid: randomGuid(i), name })));
});

test('LDIF export: base64 objectGUID, folded lines, name from cn or the DN', () => {
  const g1 = '9030057d-d403-4590-8c3b-a643fc36df3d';
  const g2 = '792f1e02-4528-48ba-a2bf-695b3916fc05';
  const b64 = (g: string): string => Buffer.from(guidToBytes(g)).toString('base64');
  const name2 = 'Ann -- Beebe & <Co>';
  const ldif = [
    'version: 1',
    '# exported by ldifde',
    'dn: CN=Terry Adams,OU=NoSync,DC=contoso,DC=com',
    'cn: Terry Adams',
    `objectGUID:: ${b64(g1).slice(0, 10)}`,
    ` ${b64(g1).slice(10)}`,
    '',
    `dn:: ${Buffer.from('CN=Zoë\\, Z,OU=NoSync,DC=contoso,DC=com').toString('base64')}`,
    `objectGUID:: ${b64(g1)}`,
    '',
    'dn: CN=Ann,OU=NoSync,DC=contoso,DC=com',
    `name:: ${Buffer.from(name2).toString('base64')}`,
    `objectGUID:: ${b64(g2)}`,
    '',
    'dn: CN=No Guid,OU=NoSync,DC=contoso,DC=com',
    'cn: No Guid',
    '',
  ].join('\n');
  const result = buildDirsyncFilter(ldif);
  assert.equal(result.format, 'ldif');
  assert.deepEqual(result.entries.map((e) => [e.name, e.guid]), [['Terry Adams', g1], [name2, g2]]);
  assert.deepEqual(result.problems.map((p) => [p.line, p.severity]), [[8, 'warning'], [15, 'error']]);
  assert.match(result.problems[0].message, /already listed on line 3/);
  assert.match(result.problems[1].message, /no objectGUID/);
  assert.deepEqual(readBack(result.xml), [{ guid: g1, name: 'Terry Adams' }, { guid: g2, name: name2 }]);
});

test('CLI: invalid GUID → exit 1 and nothing written; --skip-invalid writes the valid rows', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'dirsync-'));
  try {
    const input = path.join(dir, 'users.csv');
    const out = path.join(dir, 'filter.xml');
    writeFileSync(input, 'name,objectGUID\r\n"Smith, J -- x",9030057d-d403-4590-8c3b-a643fc36df3d\r\nBad,12345\r\n');
    const cli = (args: string[]) => spawnSync(process.execPath, ['bin/smarthost.js', 'dirsync-filter', '--input', input, '--output', out, ...args], { encoding: 'utf8', timeout: 30_000 });
    const first = cli([]);
    assert.equal(first.status, 1, first.stderr);
    assert.match(first.stdout, /line 3: "12345" is not a GUID/);
    assert.throws(() => readFileSync(out));
    // The same file as Windows PowerShell writes it with -Encoding Unicode (UTF-16LE with a BOM).
    const utf16 = path.join(dir, 'users-utf16.csv');
    writeFileSync(utf16, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('"Name","ObjectGUID"\r\n"Zoë -- Ærø","{792F1E02-4528-48BA-A2BF-695B3916FC05}"\r\n', 'utf16le')]));
    const fromUtf16 = spawnSync(process.execPath, ['bin/smarthost.js', 'dirsync-filter', '--input', utf16, '--json'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(fromUtf16.status, 0, fromUtf16.stderr);
    assert.deepEqual(readBack(JSON.parse(fromUtf16.stdout).xml), [{ guid: '792f1e02-4528-48ba-a2bf-695b3916fc05', name: 'Zoë -- Ærø' }]);
    const second = cli(['--skip-invalid', '--json']);
    assert.equal(second.status, 1);
    const report = JSON.parse(second.stdout) as { entries: { guid: string }[]; written: string };
    assert.equal(report.written, out);
    assert.deepEqual(readBack(readFileSync(out, 'utf8')), [{ guid: '9030057d-d403-4590-8c3b-a643fc36df3d', name: 'Smith, J -- x' }]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
