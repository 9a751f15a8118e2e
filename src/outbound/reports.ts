/**
 * Sends a delivery report for a message: builds it (ndr.ts) and enqueues it with the null sender <>
 * through the same spool and upstreams. Who gets it follows config.ndr.to (sender, admin copy, both,
 * off). A message whose sender is null is never reported on (no loops): its failure stays in badmail.
 * Never throws: a report that cannot be queued is logged and the delivery goes on.
 */
import type { Logger } from '../core/logger.ts';
import type { Config } from '../config/schema.ts';
import type { Outcome } from '../core/types.ts';
import type { Spool } from '../queue/spool.ts';
import type { QueueRecord } from '../queue/record.ts';
import { buildDsn } from './ndr.ts';

type ReportConfig = Pick<Config, 'ndr' | 'hostnameResolved'>;

/** Largest message returned whole on RET=FULL; bigger ones get their headers only. */
const FULL_RETURN_LIMIT = 5 * 1024 * 1024;

/** Who receives a report on this message, per config.ndr; [] for a null sender. */
export function reportRecipients(config: ReportConfig, mailFrom: string): string[] {
  if (!mailFrom) return [];
  const { to, adminCopy } = config.ndr;
  const list = to === 'sender' ? [mailFrom] : to === 'admin' ? [adminCopy] : to === 'both' ? [mailFrom, adminCopy] : [];
  return [...new Set(list.filter((a): a is string => Boolean(a)))];
}

export async function sendReport(config: ReportConfig, spool: Spool, logger: Logger, rec: QueueRecord, kind: 'failed' | 'delayed', outcomes: Outcome[], now: Date, willRetryUntil?: Date): Promise<void> {
  const to = reportRecipients(config, rec.envelope.mailFrom);
  if (!to.length || !outcomes.length) return;
  try {
    const { headerPreview } = await spool.show(rec.id);
    const subject = rec.envelope.subject ?? /^Subject:[ \t]*(.*(?:\r?\n[ \t].*)*)/im.exec(headerPreview)?.[1]?.replace(/\r?\n[ \t]+/g, ' ').trim();
    // RET=FULL asks for the whole message back; kept to a size any mailbox takes
    const full = rec.envelope.dsn?.ret === 'FULL' && rec.envelope.size <= FULL_RETURN_LIMIT ? await spool.readMessage(rec.id) : undefined;
    const from = config.ndr.from ?? `MAILER-DAEMON@${config.hostnameResolved}`;
    const content = buildDsn({
      kind, queueId: rec.id, reportingMta: config.hostnameResolved, from, to, originalSender: rec.envelope.mailFrom,
      originalSubject: subject, arrivalDate: new Date(Date.parse(rec.envelope.receivedAt) || now.getTime()), now,
      outcomes, originalHeaders: headerPreview, envid: rec.envelope.dsn?.envid, willRetryUntil, originalMessage: full,
    });
    const id = await spool.enqueue({
      mailFrom: '', recipients: to, client: { address: '', source: 'ndr' }, receivedAt: now.toISOString(), size: content.length,
      upstream: config.ndr.upstream, subject: `${kind === 'failed' ? 'Undeliverable' : 'Delivery delayed'}: ${subject ?? ''}`.trim(),
    }, content);
    logger.info({ id: rec.id, report: id, kind, to }, 'delivery report queued');
  } catch (err) {
    logger.error({ err, id: rec.id, kind }, 'could not queue the delivery report');
  }
}
