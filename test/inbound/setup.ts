/**
 * Builds a listener for tests: a config from YAML lines (mailroot in a fresh temp folder), a
 * recording enqueuer, a logger that keeps its lines, all on 127.0.0.1 port 0.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { parseConfigText } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { createSmtpListener } from '../../src/inbound/listener.ts';
import type { Refusal, SenderCheck, SmtpListener } from '../../src/inbound/types.ts';
import { MemoryEnqueuer } from '../helpers/memory-enqueuer.ts';

export interface TestRelay {
  port: number;
  ports: number[];
  config: Config;
  queue: MemoryEnqueuer;
  listener: SmtpListener;
  logs: Array<Record<string, unknown>>;
  dir: string;
  close(): Promise<void>;
}

/** Port 0 (the OS picks) is not a valid config value, so tests write port 1 and it becomes 0 here. */
export function makeConfig(yaml: string, dir: string): Config {
  const text = `hostname: relay.test\nmailroot: ${JSON.stringify(path.join(dir, 'mailroot'))}\n${yaml}`;
  const config = parseConfigText(text, path.join(dir, 'smarthost.yaml'));
  return { ...config, listen: config.listen.map((l) => (l.port === 1 ? { ...l, port: 0 } : l)) };
}

/** Default listener: one plain+STARTTLS listener on 127.0.0.1:0 unless yaml has its own `listen:`. */
export async function startRelay(yaml = '', opts: { senderCheck?: SenderCheck; dir?: string; onRefusal?: (r: Refusal) => void } = {}): Promise<TestRelay> {
  const dir = opts.dir ?? mkdtempSync(path.join(tmpdir(), 'smarthost-inbound-'));
  const full = yaml.includes('listen:') ? yaml : `listen:\n  - address: 127.0.0.1\n    port: 1\n${yaml}`;
  const config = makeConfig(full, dir);
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim()) logs.push(JSON.parse(line));
      done();
    },
  });
  const logger = pino({ level: 'info' }, sink);
  const queue = new MemoryEnqueuer();
  const listener = createSmtpListener(config, { enqueue: queue, logger, senderCheck: opts.senderCheck, onRefusal: opts.onRefusal });
  const bound = await listener.start();
  return {
    port: bound[0].port,
    ports: bound.map((b) => b.port),
    config,
    queue,
    listener,
    logs,
    dir,
    async close() {
      await listener.stop({ graceful: false });
      if (!opts.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
