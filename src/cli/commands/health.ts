/**
 * smarthost health [--config FILE] [--url URL] — asks a running relay's console for /healthz and
 * exits 0 when it answers 200 ("ok"), 1 otherwise. For container HEALTHCHECKs and monitoring
 * scripts: an image built FROM scratch has no curl, and the binary is already there.
 */
import type { Command } from 'commander';
import { request } from 'node:http';

export function register(program: Command): void {
  program
    .command('health')
    .description('ask the running relay\'s console for /healthz: exit 0 when healthy, 1 when not (container HEALTHCHECK)')
    .option('-c, --config <file>', 'YAML config file giving the console\'s address (default: SMARTHOST_CONFIG, /etc/smarthost/smarthost.yaml, ./smarthost.yaml, else the embedded defaults and SMARTHOST_* variables)')
    .option('--url <url>', 'the console\'s health URL, instead of the one the config gives')
    .option('--timeout <ms>', 'give up after this many milliseconds', '5000')
    .action(async (opts: { config?: string; url?: string; timeout: string }) => {
      let url = opts.url;
      if (!url) {
        const { loadConfig } = await import('../../config/load.ts');
        const { findConfig } = await import('../../config/locate.ts');
        // As serve: with no config file anywhere, the relay runs on the defaults (and SMARTHOST_* variables).
        const cfg = loadConfig(findConfig(opts.config).file);
        if (!cfg.web.enabled) {
          process.stderr.write('smarthost: the console is off (web.enabled: false), so there is no /healthz to ask; pass --url, or turn it on\n');
          process.exitCode = 2;
          return;
        }
        // a console on every address answers on loopback too
        const host = cfg.web.address === '0.0.0.0' ? '127.0.0.1' : cfg.web.address === '::' ? '[::1]' : cfg.web.address.includes(':') ? `[${cfg.web.address}]` : cfg.web.address;
        url = `http://${host}:${cfg.web.port}/healthz`;
      }
      const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request(url, { timeout: Number(opts.timeout) || 5000 }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => { body += d; });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('timeout', () => req.destroy(new Error(`no answer within ${opts.timeout} ms`)));
        req.on('error', reject);
        req.end();
      }).catch((err: Error) => ({ status: 0, body: err.message }));
      if (answer.status === 200) {
        process.stdout.write(`${url}: healthy\n`);
      } else {
        process.stdout.write(`${url}: ${answer.status ? `unhealthy (HTTP ${answer.status})` : `no answer (${answer.body})`}\n${answer.status ? `${answer.body}\n` : ''}`);
        process.exitCode = 1;
      }
    });
}
