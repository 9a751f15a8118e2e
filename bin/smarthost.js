#!/usr/bin/env node
// The smarthost CLI. Sources are TypeScript run directly by Node.js >= 22.18 (type stripping);
// `npm install` brings Node.js 24 into node_modules/.bin, which npm scripts and npx put first on PATH.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  console.error(`smarthost needs Node.js 22.18 or newer (this is ${process.version}). Run it with "npx smarthost" or "npm start" inside the project, which use the Node.js 24 that npm installed.`);
  process.exit(2);
}
await import('../src/cli/main.ts');
