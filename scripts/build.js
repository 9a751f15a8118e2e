// npm run build (run by prepack): compiles src/ to JavaScript in dist/ for the npm package, because
// Node.js refuses to strip types from files under node_modules (ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING).
// The checkout keeps running src/*.ts directly; bin/smarthost.js picks dist/ only where src/ is absent.
// Plain JavaScript so that it runs on any Node.js npm may use.
import { cpSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';

const root = path.resolve(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), '..');
const tsc = createRequire(path.join(root, 'package.json')).resolve('typescript/bin/tsc');
rmSync(path.join(root, 'dist'), { recursive: true, force: true });
execFileSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
// The console's static files, next to the compiled web/app.js that serves them (import.meta.dirname/ui).
cpSync(path.join(root, 'src/web/ui'), path.join(root, 'dist/web/ui'), { recursive: true });
