// Test helper (not a test): a minimal relay core in its own process — spool + delivery manager +
// SMTP transport to 127.0.0.1:PORT — that queues one message, prints "QUEUED <id>" and keeps delivering.
import { openSpool } from '../../src/queue/spool.ts';
import { createDeliveryManager } from '../../src/outbound/manager.ts';
import { createSmtpTransport } from '../../src/transports/smtp.ts';
import { parseConfigText } from '../../src/config/load.ts';
import { systemClock } from '../../src/core/clock.ts';
import { silentLogger } from '../../src/core/logger.ts';

const [mailroot, port] = process.argv.slice(2);
const config = { ...parseConfigText(`hostname: relay.test\nupstreams:\n  - { name: main, url: "smtp://127.0.0.1:${port}" }\n`, `${mailroot}/smarthost.yaml`), mailrootPath: mailroot };
const logger = silentLogger();
const spool = await openSpool(config, { clock: systemClock, logger });
const manager = createDeliveryManager(config, { spool, transports: [createSmtpTransport(config.upstreams[0], { logger, hostname: 'relay.test' })], logger, clock: systemClock });
manager.start();
const id = await spool.enqueue({ mailFrom: 'scanner@contoso.com', recipients: ['boss@contoso.com'], client: { address: '127.0.0.1', source: 'smtp' }, receivedAt: new Date().toISOString(), size: 0 }, Buffer.from('Subject: crash test\r\n\r\nhello\r\n'));
process.stdout.write(`QUEUED ${id}\n`);
setInterval(() => {}, 1000);
