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
import type { Reader } from './explain.ts';

type ReportConfig = Pick<Config, 'ndr' | 'hostnameResolved'>;

/** Largest message returned whole on RET=FULL; bigger ones get their headers only. */
const FULL_RETURN_LIMIT = 5 * 1024 * 1024;

/**
 * Who gets reports: ndr.to, or when it is not set, the sender plus the admin copy when
 * ndr.adminCopy is set (IIS's "Send copy of Non-Delivery Report to" works alone, so does ours).
 */
export function ndrAudience(ndr: ReportConfig['ndr']): 'sender' | 'admin' | 'both' | 'off' {
  return ndr.to ?? (ndr.adminCopy ? 'both' : 'sender');
}

/** The reports to send on this message, each with its reader; [] for a null sender. */
export function reportsFor(config: ReportConfig, mailFrom: string): Array<{ to: string; reader: Reader }> {
  if (!mailFrom) return [];
  const to = ndrAudience(config.ndr);
  const { adminCopy } = config.ndr;
  const out: Array<{ to: string; reader: Reader }> = [];
  // the sender's report, unless the sender is the admin copy address (which then gets the admin's)
  if ((to === 'sender' || to === 'both') && mailFrom !== adminCopy) out.push({ to: mailFrom, reader: 'sender' });
  if ((to === 'admin' || to === 'both') && adminCopy) out.push({ to: adminCopy, reader: 'admin' });
  return out;
}

/** Who receives a report on this message, per config.ndr; [] for a null sender. */
export function reportRecipients(config: ReportConfig, mailFrom: string): string[] {
  return reportsFor(config, mailFrom).map((r) => r.to);
}

/**
 * Queues the reports on a message: one to its sender in words for them, one to the admin copy
 * address that also says where the message is in badmail/ (`badmailName`) and how to resend it.
 */
export async function sendReport(config: ReportConfig, spool: Spool, logger: Logger, rec: QueueRecord, kind: 'failed' | 'delayed', outcomes: Outcome[], now: Date, willRetryUntil?: Date, badmailName?: string): Promise<void> {
  const reports = reportsFor(config, rec.envelope.mailFrom);
  if (!reports.length || !outcomes.length) return;
  try {
    const { headerPreview } = await spool.show(rec.id);
    const subject = rec.envelope.subject ?? /^Subject:[ \t]*(.*(?:\r?\n[ \t].*)*)/im.exec(headerPreview)?.[1]?.replace(/\r?\n[ \t]+/g, ' ').trim();
    // RET=FULL asks for the whole message back; kept to a size any mailbox takes
    const full = rec.envelope.dsn?.ret === 'FULL' && rec.envelope.size <= FULL_RETURN_LIMIT ? await spool.readMessage(rec.id) : undefined;
    const from = config.ndr.from ?? `MAILER-DAEMON@${config.hostnameResolved}`;
    for (const { to, reader } of reports) {
      const content = buildDsn({
        kind, queueId: rec.id, reportingMta: config.hostnameResolved, from, to: [to], originalSender: rec.envelope.mailFrom,
        originalSubject: subject, arrivalDate: new Date(Date.parse(rec.envelope.receivedAt) || now.getTime()), now,
        outcomes, originalHeaders: headerPreview, envid: rec.envelope.dsn?.envid, willRetryUntil, originalMessage: full, reader, badmailName,
      });
      const id = await spool.enqueue({
        mailFrom: '', recipients: [to], client: { address: '', source: 'ndr' }, receivedAt: now.toISOString(), size: content.length,
        upstream: config.ndr.upstream, subject: `${kind === 'failed' ? 'Undeliverable' : 'Delivery delayed'}: ${subject ?? ''}`.trim(),
      }, content);
      logger.info({ id: rec.id, report: id, kind, to: [to], reader }, 'delivery report queued');
    }
  } catch (err) {
    logger.error({ err, id: rec.id, kind }, 'could not queue the delivery report');
  }
}
