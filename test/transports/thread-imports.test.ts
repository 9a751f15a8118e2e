/**
 * The delivery thread (smtp-thread-worker.ts) is a V8 heap of its own: every module it loads stays
 * there as source and code. It needs the SMTP transport and the logger's redaction list, not the
 * configuration's validation library (zod) nor the relay's pretty log printer; loading them made the
 * thread's heap about 17 MB larger under load (docs/performance.md "Memory").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

test("the delivery thread's modules do not pull in zod or pino-pretty", () => {
  const probe = `
    import module from 'node:module';
    const seen = [];
    module.registerHooks({ resolve(spec, ctx, next) { const r = next(spec, ctx); seen.push(r.url); return r; } });
    await import(${JSON.stringify(new URL('../../src/transports/smtp.ts', import.meta.url).href)});
    await import(${JSON.stringify(new URL('../../src/core/redact.ts', import.meta.url).href)});
    await import('pino');
    console.log(JSON.stringify(seen));
  `;
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', probe], { encoding: 'utf8', cwd: new URL('../..', import.meta.url).pathname });
  assert.equal(run.status, 0, run.stderr);
  const urls = JSON.parse(run.stdout.trim().split('\n').pop()!) as string[];
  assert.ok(urls.some((u) => u.includes('/node_modules/nodemailer/')), 'the probe saw the transport load nodemailer');
  assert.deepEqual(urls.filter((u) => /\/node_modules\/(zod|pino-pretty)\//.test(u)), []);
});
