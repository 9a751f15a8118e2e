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
// Measured with npm run bench beside the previous setting each time (docs/performance.md "Memory"):
// 8 MB semi-spaces kept peak RSS near 170-215 MB instead of 310-340 MB; 4 MB held 10-40 MB less;
// 1 MB, with the old generation grown by 20% instead of V8's up-to-4x (--heap-growing-percent),
// peaks at 152-171 MB against 202-221 MB with 2 MB and 20%, at the same CPU per message within the
// machine's noise. Every thread's heap (the event loop's, the delivery thread's, the history's)
// takes these flags. The heap size is fixed when V8 starts, so the process replaces itself once
// (execve: same pid, no parent left behind). The single executable gets the same flags from its
// SEA config (scripts/build-exe.mjs): keep both lists alike.
// (--initial-old-space-size=64 was here while each 100 KB message was copied four times on its way
// in: V8 counted those Buffers against a small initial old generation and ran a full mark-compact
// every ~20 messages. With the copies gone (src/inbound/intake.ts, src/transports/smtp-thread.ts)
// it bought no CPU the bench could see and cost 60-90 MB of peak.)
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
  process.execve(process.execPath, [process.execPath, '--max-semi-space-size=1', '--heap-growing-percent=20', ...process.execArgv, ...process.argv.slice(1)], { ...process.env, SMARTHOST_NODE_TUNED: '1' });
}
await import(checkout ? '../src/cli/main.ts' : '../dist/cli/main.js');
