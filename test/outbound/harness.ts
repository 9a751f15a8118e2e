// Test helper (not a test): a spool in a temp mailroot, a config from YAML text, a ManualClock,
// and a delivery manager over real SMTP transports pointed at loopback upstreams.
import { mkdtemp, rm, readdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseConfigText } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { silentLogger } from '../../src/core/logger.ts';
import type { Envelope, QueueEvent, Transport } from '../../src/core/types.ts';
import { openSpool, type Spool } from '../../src/queue/spool.ts';
import { createDeliveryManager, type DeliveryManager } from '../../src/outbound/manager.ts';
import { createSmtpTransport } from '../../src/transports/smtp.ts';

export interface Harness {
  root: string;
  config: Config;
  clock: ManualClock;
  spool: Spool;
  manager: DeliveryManager;
  transports: Transport[];
  events: QueueEvent[];
  badmail(): Promise<string[]>;
  readBadmail(name: string): Promise<string>;
  enqueue(mailFrom: string, recipients: string[], body?: string, extra?: Partial<Envelope>): Promise<string>;
  close(): Promise<void>;
}

export async function harness(yaml: string): Promise<Harness> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'sh-outbound-'));
  const config = { ...parseConfigText(`hostname: relay.test\n${yaml}`, path.join(root, 'smarthost.yaml')), mailrootPath: root } as Config;
  const clock = new ManualClock();
  const events: QueueEvent[] = [];
  const logger = silentLogger();
  const spool = await openSpool(config, { clock, logger, events: (e) => events.push(e) });
  const transports = config.upstreams.map((u) => createSmtpTransport(u, { logger, hostname: 'relay.test', pool: false }));
  const manager = createDeliveryManager(config, { spool, transports, logger, clock, events: (e) => events.push(e) });
  return {
    root, config, clock, spool, manager, transports, events,
    badmail: async () => (await readdir(path.join(root, 'badmail'))).sort(),
    readBadmail: (name) => readFile(path.join(root, 'badmail', name), 'utf8'),
    enqueue: (mailFrom, recipients, body = 'hello', extra = {}) => spool.enqueue(
      { mailFrom, recipients, client: { address: '127.0.0.1', source: 'smtp' }, receivedAt: new Date(clock.now()).toISOString(), size: 0, subject: 'Scan 42', ...extra },
      Buffer.from(`From: <${mailFrom || 'mailer-daemon@relay.test'}>\r\nTo: ${recipients.join(', ')}\r\nSubject: Scan 42\r\n\r\n${body}\r\n`)),
    close: async () => {
      await manager.stop();
      // the spool's own timers (delivered files leaving, delivered.log) must end before its folder goes
      await spool.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}
