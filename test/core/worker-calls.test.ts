import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { WorkerCalls } from '../../src/core/worker-calls.ts';

/** A worker answering { op: 'echo', value } with the value, { op: 'fail' } with an error and a code, and saying hello on its own. */
function echoWorker(): Worker {
  return new Worker(`
    const { parentPort } = require('node:worker_threads');
    parentPort.postMessage({ op: 'hello' });
    parentPort.on('message', (m) => {
      if (m.op === 'echo') parentPort.postMessage({ seq: m.seq, ok: true, value: m.value });
      else if (m.op === 'fail') parentPort.postMessage({ seq: m.seq, ok: false, error: 'refused', code: 'E_TEST' });
      else if (m.op === 'die') process.exit(3);
    });`, { eval: true });
}

test('replies settle their own call, in any order; other messages are left to the owner', async (t) => {
  const w = echoWorker();
  t.after(() => w.terminate());
  const calls = new WorkerCalls();
  const own: unknown[] = [];
  w.on('message', (m: unknown) => { if (!calls.settle(w, m)) own.push(m); });
  const [a, b] = await Promise.all([calls.call<string>(w, { op: 'echo', value: 'a' }), calls.call<number>(w, { op: 'echo', value: 2 })]);
  assert.deepEqual([a, b], ['a', 2]);
  await assert.rejects(calls.call(w, { op: 'fail' }), (e: Error & { code?: string }) => e.message === 'refused' && e.code === 'E_TEST');
  assert.deepEqual(own, [{ op: 'hello' }]);
  assert.equal(calls.size, 0);
});

test('a request that cannot be sent rejects at once and is not left waiting; onPosted runs only for sent ones', async (t) => {
  const w = echoWorker();
  t.after(() => w.terminate());
  const calls = new WorkerCalls();
  w.on('message', (m: unknown) => calls.settle(w, m));
  let posted = 0;
  await assert.rejects(calls.call(w, { op: 'echo', value: () => 1 }, undefined, () => posted++), /could not be cloned/);
  assert.equal(calls.size, 0);
  assert.equal(posted, 0);
  assert.equal(await calls.call(w, { op: 'echo', value: 'ok' }, undefined, () => posted++), 'ok');
  assert.equal(posted, 1);
});

test('when the worker dies, every waiting call rejects with the reason', async () => {
  const w = echoWorker();
  const calls = new WorkerCalls();
  w.on('message', (m: unknown) => calls.settle(w, m));
  w.on('exit', (code) => calls.failAll(`stopped (exit code ${code})`));
  const waiting = [calls.call(w, { op: 'die' }), calls.call(w, { op: 'die' })];
  for (const p of waiting) await assert.rejects(p, /stopped \(exit code 3\)/);
  assert.equal(calls.size, 0);
});
