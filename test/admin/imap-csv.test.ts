// IMAP migration CSV: RFC 4180 round trip (checked with Python's csv module), admin-credential
// forms, duplicates and bad addresses, and the seed's limits from mailbox statistics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildImapCsv, parseSize } from '../../src/admin/imap-csv.ts';
import { formatCsv, parseCsv } from '../../src/admin/csv.ts';

const USERS = 'EmailAddress,UserName,Password\r\nterrya@contoso.edu,contoso\\terry.adams,1091990\r\nannb@contoso.edu,contoso\\ann.beebe,"p,a""ss\nword"\r\npaulc@contoso.edu,contoso\\paul.cannon,3281986\r\n';

test('CSV parser and writer: quotes, commas, line breaks, CRLF; Python csv reads our output identically', () => {
  const rows = [['a', 'b,c', 'say "hi"'], ['multi\nline', ' padded ', ''], ['ünïcødé', '=1+2', 'x']];
  const text = formatCsv(rows);
  assert.deepEqual(parseCsv(text).map((r) => r.fields), rows);
  const python = execFileSync('python3', ['-c', 'import csv,json,sys; print(json.dumps(list(csv.reader(open(sys.argv[1], newline="", encoding="utf-8")))))', writeTemp(text)], { encoding: 'utf8' });
  assert.deepEqual(JSON.parse(python), rows);
  assert.throws(() => parseCsv('a,"b\nc'), /line 1: a quoted field is never closed/);
  assert.deepEqual(parseCsv('x,y\n"1\n2",3\n\nlast,row').map((r) => r.line), [1, 2, 5]);
});

let tempDir: string | undefined;
function writeTemp(text: string): string {
  tempDir ??= mkdtempSync(path.join(tmpdir(), 'imapcsv-'));
  const file = path.join(tempDir, `f${Math.random().toString(36).slice(2)}.csv`);
  writeFileSync(file, text);
  return file;
}
test.after(() => { if (tempDir) rmSync(tempDir, { recursive: true, force: true }); });

test('plain users: passwords kept exactly, output is the three columns', () => {
  const r = buildImapCsv(USERS);
  assert.deepEqual(r.problems, []);
  assert.deepEqual(parseCsv(r.csv).map((x) => x.fields), [
    ['EmailAddress', 'UserName', 'Password'],
    ['terrya@contoso.edu', 'contoso\\terry.adams', '1091990'],
    ['annb@contoso.edu', 'contoso\\ann.beebe', 'p,a"ss\nword'],
    ['paulc@contoso.edu', 'contoso\\paul.cannon', '3281986'],
  ]);
});

test('administrator credential forms for Exchange, Dovecot and Mirapoint', () => {
  const input = 'EmailAddress,UserName\nterrya@contoso.edu,terry.adams\n';
  const user = (serverType: 'exchange' | 'dovecot' | 'mirapoint', adminUser: string) => {
    const r = buildImapCsv(input, { serverType, adminUser, adminPassword: 'Adm1n!' });
    assert.deepEqual(r.problems, []);
    return [r.rows[0].userName, r.rows[0].password];
  };
  assert.deepEqual(user('exchange', 'contoso-students/mailadmin'), ['contoso-students/mailadmin/terry.adams', 'Adm1n!']);
  assert.deepEqual(user('dovecot', 'mailadmin'), ['terry.adams*mailadmin', 'Adm1n!']);
  assert.deepEqual(user('mirapoint', 'mailadmin'), ['#terrya@contoso.edu#mailadmin#', 'Adm1n!']);
  const wrong = buildImapCsv(input, { serverType: 'exchange', adminUser: 'mailadmin', adminPassword: 'x' });
  assert.match(wrong.problems[0].message, /DOMAIN\/Admin/);
  assert.match(buildImapCsv(input, { serverType: 'generic', adminUser: 'a', adminPassword: 'x' }).problems[0].message, /need --server-type/);
});

test('duplicates, bad addresses and empty passwords are flagged with their lines', () => {
  const input = 'EmailAddress,UserName,Password\nok@contoso.edu,ok,1\nOK@contoso.edu,other,2\nnot-an-address,x,3\nuser@@contoso.edu,y,4\nsame@contoso.edu,ok,5\nempty@contoso.edu,e,\n';
  const r = buildImapCsv(input);
  assert.deepEqual(r.problems.map((p) => [p.line, p.severity]), [[3, 'error'], [4, 'error'], [5, 'error'], [6, 'warning'], [7, 'error']]);
  assert.match(r.problems[0].message, /duplicate EmailAddress \(first on line 2\)/);
  assert.match(r.problems[1].message, /not a valid email address/);
  // an invalid row is never in the output: the empty password's row is left out like the others
  assert.deepEqual(r.rows.map((x) => x.emailAddress), ['ok@contoso.edu', 'same@contoso.edu']);
  assert.doesNotMatch(r.csv, /empty@contoso\.edu/);
});

test('a row with more fields than the header (an unquoted comma in a password) is an error naming the line, never cut', () => {
  const r = buildImapCsv('EmailAddress,UserName,Password\nok@contoso.edu,ok,1\ncomma@contoso.edu,c,pass,word\n');
  assert.deepEqual(r.problems.map((p) => [p.line, p.severity]), [[3, 'error']]);
  assert.match(r.problems[0].message, /line 3 has 4 fields but the header has 3: a value holding a comma \(often a password\) must be in double quotes/);
  assert.deepEqual(r.rows.map((x) => x.emailAddress), ['ok@contoso.edu']);
  assert.doesNotMatch(r.csv, /comma@|pass/);
});

test('CLI --skip-invalid writes only the valid rows', () => {
  const input = writeTemp('EmailAddress,UserName,Password\nok@contoso.edu,ok,1\nempty@contoso.edu,e,\ncomma@contoso.edu,c,pass,word\n');
  const out = path.join(tempDir!, 'skip.csv');
  const r = spawnSync(process.execPath, ['bin/smarthost.js', 'imap-csv', '--input', input, '--output', out, '--skip-invalid'], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 1, 'errors are still reported');
  assert.match(r.stdout, /line 3: .*Password is empty/);
  assert.match(r.stdout, /line 4: .*has 4 fields but the header has 3/);
  assert.equal(readFileSync(out, 'utf8'), 'EmailAddress,UserName,Password\r\nok@contoso.edu,ok,1\r\n');
});

test('statistics: 35 MB per message and 500,000 items per batch', () => {
  const stats = 'EmailAddress,ItemCount,LargestMessage\nterrya@contoso.edu,"250,000",40 MB\nannb@contoso.edu,200000,36700161\npaulc@contoso.edu,60000,36700159\n';
  const r = buildImapCsv(USERS, {}, stats);
  assert.equal(r.totals.items, 510_000);
  const messages = r.problems.map((p) => p.message);
  assert.equal(messages.filter((m) => /over 35 MB|largest message/.test(m)).length, 2, messages.join('\n'));
  assert.ok(messages.some((m) => /terrya@contoso.edu.*40\.0 MB/.test(m)));
  assert.ok(messages.some((m) => /510000 items in all, more than 500,000/.test(m)));
  const small = buildImapCsv(USERS, {}, 'EmailAddress,ItemCount,LargestMessage\nterrya@contoso.edu,10,1 MB\nannb@contoso.edu,10,1 MB\n');
  assert.deepEqual(small.problems.map((p) => p.message), ['no statistics for this mailbox: its size limits were not checked']);
  assert.equal(parseSize('1.5 GB'), 1610612736);
  assert.equal(parseSize('lots'), undefined);
});

test('CLI: writes the CSV, never prints passwords, exit 1 on errors', () => {
  const input = writeTemp(USERS);
  const out = path.join(tempDir!, 'out.csv');
  const ok = spawnSync(process.execPath, ['bin/smarthost.js', 'imap-csv', '--input', input, '--server-type', 'dovecot', '--admin-user', 'mailadmin', '--output', out, '--json'], {
    encoding: 'utf8', timeout: 30_000, env: { ...process.env, SMARTHOST_IMAP_ADMIN_PASSWORD: 'S3cr3t-admin' },
  });
  assert.equal(ok.status, 0, ok.stderr);
  assert.ok(!ok.stdout.includes('S3cr3t-admin'));
  assert.equal(JSON.parse(ok.stdout).rows[0].userName, 'contoso\\terry.adams*mailadmin');
  assert.match(readFileSync(out, 'utf8'), /^EmailAddress,UserName,Password\r\nterrya@contoso.edu,contoso\\terry.adams\*mailadmin,S3cr3t-admin\r\n/);
  const bad = spawnSync(process.execPath, ['bin/smarthost.js', 'imap-csv', '--input', writeTemp('EmailAddress,UserName,Password\nbad,u,p\n')], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(bad.status, 1);
  assert.match(bad.stdout, /line 2: "bad" is not a valid email address/);
});
