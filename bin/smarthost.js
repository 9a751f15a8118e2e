#!/usr/bin/env node
// The smarthost CLI. In the checkout it runs the TypeScript in src/ directly (Node.js type
// stripping; `npm start`, `npm test` and `npx smarthost` use the Node.js 24 that `npm install` put in
// node_modules/.bin). The npm package ships no src/ but dist/, the same code compiled by
// `npm run build`, because Node.js does not strip types under node_modules.
import { existsSync } from 'node:fs';
import module from 'node:module';
import { fileURLToPath } from 'node:url';

const checkout = existsSync(new URL('../src/cli/main.ts', import.meta.url));
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  console.error(checkout
    ? `smarthost needs Node.js 22.18 or newer (this is ${process.version}). Inside the project, "npm start" and "npx smarthost" use the Node.js 24 that "npm install" put in node_modules/.bin.`
    : `smarthost needs Node.js 22.18 or newer (this is ${process.version} at ${process.execPath}). Install a current Node.js LTS (https://nodejs.org/) and run smarthost again; docs/install.md has the details.`);
  process.exit(2);
}
// `serve` is a long-running process: V8's default young generation lets the heap of a busy relay
// grow by about 100 MB of short-lived garbage (SMTP sessions, buffers) before it is collected.
// A smaller one (8 MB semi-spaces) kept peak RSS near 170-215 MB instead of 310-340 MB at the
// same CPU per message (measured with npm run bench, docs/performance.md); 4 MB semi-spaces hold
// 8 MB less while idle and 10-40 MB less at peak with 50 sessions, again at the same CPU per message
// within the machine's noise (docs/performance.md "Memory"). The heap size is fixed
// when V8 starts, so the process replaces itself once (execve: same pid, no parent left behind).
// --initial-old-space-size=64: V8 counts Buffers (memory outside its heap) against a small initial
// old-generation limit, so relaying 100 KB messages triggered a full mark-compact every ~20
// messages: 0.4-0.6 ms of GC-thread CPU per message. With a 64 MB starting limit, 45 became 3 per
// 1,000 messages, for 30-45 MB more peak RSS at 100 KB (a 128 MB limit cost +60-80 MB). Measured on
// the bench machine, docs/performance.md.
// SMARTHOST_NODE_TUNED marks the second start; setting it yourself (or NODE_OPTIONS with
// --max-semi-space-size) keeps your own settings.
// In the checkout, Node.js strips the TypeScript of every module at each start, with a WebAssembly
// compiler that stays in memory afterwards: about 17 MB per thread, 50 MB for `serve` and its two
// worker threads. Node's compile cache keeps the stripped code (and V8's bytecode) between starts,
// so only the first start after a change pays for it. The cache lives in the checkout's
// node_modules/.cache, not a shared /tmp another user could fill. Workers inherit the variable.
if (checkout && !process.env.NODE_COMPILE_CACHE) {
  process.env.NODE_COMPILE_CACHE = fileURLToPath(new URL('../node_modules/.cache/smarthost-compile', import.meta.url));
  module.enableCompileCache?.(process.env.NODE_COMPILE_CACHE);
}
const tuned = process.env.SMARTHOST_NODE_TUNED || /--max-semi-space-size/.test(`${process.env.NODE_OPTIONS ?? ''} ${process.execArgv.join(' ')}`);
if (process.argv[2] === 'serve' && !tuned && typeof process.execve === 'function') {
  process.execve(process.execPath, [process.execPath, '--max-semi-space-size=4', '--initial-old-space-size=64', ...process.execArgv, ...process.argv.slice(1)], { ...process.env, SMARTHOST_NODE_TUNED: '1' });
}
await import(checkout ? '../src/cli/main.ts' : '../dist/cli/main.js');
