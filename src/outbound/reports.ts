/**
 * Sends a delivery report for a message: builds it (ndr.ts) and enqueues it through the same spool
 * and upstreams. Who gets it follows config.ndr.to (sender, admin copy, both, off).
 *
 * Who it is from depends on the route (src/m365/ndr-sender.ts): the null sender <> and
 * MAILER-DAEMON@host as RFC 5321 wants, except through Microsoft 365 SMTP AUTH or Graph, which only
 * send as the signed-in mailbox: there the report goes out as the mailbox (or an `ndr.from` it may
 * send as), envelope and From alike, and stays on that upstream.
 *
 * Loops: a report is never reported on (null sender, a report of ours, or any message that is
 * itself a delivery report or auto-reply): its failure stays in badmail. A report that cannot be
 * queued is written to badmail with its reason, never dropped. Never throws.
 */
import type { Logger } from '../core/logger.ts';
import type { Config } from '../config/schema.ts';
import type { Outcome } from '../core/types.ts';
import type { Spool } from '../queue/spool.ts';
import type { QueueRecord } from '../queue/record.ts';
import type { RouteConfig } from '../config/sections/routing.ts';
import { ndrSenderFor, type NdrSender } from '../m365/ndr-sender.ts';
import { buildDsn } from './ndr.ts';
import type { Reader } from './explain.ts';

type ReportConfig = Pick<Config, 'ndr' | 'hostnameResolved'> & Partial<Pick<Config, 'upstreams'>>;

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
 * Is this message itself a report (so no report may be made about it)? Ours carry source 'ndr'; a
 * report from elsewhere has the null sender, a multipart/report body (RFC 6522) or an
 * Auto-Submitted: auto-replied header (RFC 3834, as ours do).
 */
export function isReport(rec: QueueRecord, headers: string): boolean {
  if (!rec.envelope.mailFrom || rec.envelope.client.source === 'ndr') return true;
  return /^Content-Type:[ \t]*multipart\/report/im.test(headers) || /^Auto-Submitted:[ \t]*auto-replied/im.test(headers);
}

/**
 * The upstream a report on `rec` goes through and who it is sent as: ndr.upstream, else the route's
 * first upstream (the route of the recipients reported on), else the message's upstream, else the
 * first. The route's `ndr.from` wins over the global one.
 */
export function reportRoute(config: ReportConfig, rec: QueueRecord, route?: RouteConfig): { upstream?: string; sender: NdrSender } {
  const upstreams = config.upstreams ?? [];
  const name = config.ndr.upstream ?? route?.upstreams[0] ?? rec.envelope.upstream ?? upstreams[0]?.name;
  const upstream = upstreams.find((u) => u.name === name);
  return { upstream: name, sender: ndrSenderFor(upstream, route?.ndr?.from ?? config.ndr.from, config.hostnameResolved) };
}

/**
 * Queues the reports on a message: one to its sender in words for them, one to the admin copy
 * address that also says where the message is in badmail/ (`badmailName`) and how to resend it.
 * Each goes out as an address its upstream may send as (reportRoute), over the route it reports on.
 */
export async function sendReport(config: ReportConfig, spool: Spool, logger: Logger, rec: QueueRecord, kind: 'failed' | 'delayed', outcomes: Outcome[], now: Date, willRetryUntil?: Date, via?: RouteConfig, badmailName?: string): Promise<void> {
  const reports = reportsFor(config, rec.envelope.mailFrom);
  if (!reports.length || !outcomes.length || rec.envelope.client.source === 'ndr') return;
  // never dropped: a report that cannot be queued (or, when it could not even be built, the reason)
  // goes to badmail
  const keep = async (to: string[], content: Buffer | undefined, err: unknown): Promise<void> => {
    logger.error({ err, id: rec.id, kind, to }, 'could not queue the delivery report; it is kept in badmail');
    const reason = `smarthost could not queue this delivery report (${kind}) about message ${rec.id} for ${to.join(', ')}: ${(err as Error).message}`;
    await spool.quarantine(content ?? Buffer.from(`Subject: delivery report about ${rec.id} (not built)\r\n\r\n${reason}\r\n`), reason, `${rec.id}.${kind}-report`)
      .catch((e: Error) => logger.error({ err: e, id: rec.id }, 'could not write the delivery report to badmail either'));
  };
  let prepared;
  try {
    const { headerPreview } = await spool.show(rec.id);
    if (isReport(rec, headerPreview)) {
      logger.info({ id: rec.id, kind }, 'no delivery report: the message is itself a report or an auto-reply');
      return;
    }
    const subject = rec.envelope.subject ?? /^Subject:[ \t]*(.*(?:\r?\n[ \t].*)*)/im.exec(headerPreview)?.[1]?.replace(/\r?\n[ \t]+/g, ' ').trim();
    // RET=FULL asks for the whole message back; kept to a size any mailbox takes
    const full = rec.envelope.dsn?.ret === 'FULL' && rec.envelope.size <= FULL_RETURN_LIMIT ? await spool.readMessage(rec.id) : undefined;
    const route = reportRoute(config, rec, via);
    if (route.sender.warning) logger.warn({ id: rec.id, upstream: route.upstream }, route.sender.warning);
    prepared = { headerPreview, subject, full, route };
  } catch (err) {
    return keep(reports.map((r) => r.to), undefined, err);
  }
  const { headerPreview, subject, full, route } = prepared;
  // each report on its own: one that cannot be queued does not stop the other
  for (const report of reports) {
    const to = [report.to];
    let content: Buffer | undefined;
    try {
      content = buildDsn({
        kind, queueId: rec.id, reportingMta: config.hostnameResolved, from: route.sender.from, to, originalSender: rec.envelope.mailFrom,
        originalSubject: subject, arrivalDate: new Date(Date.parse(rec.envelope.receivedAt) || now.getTime()), now,
        outcomes, originalHeaders: headerPreview, envid: rec.envelope.dsn?.envid, willRetryUntil, originalMessage: full, reader: report.reader, badmailName,
      });
      const id = await spool.enqueue({
        mailFrom: route.sender.mailFrom, recipients: to, client: { address: '', source: 'ndr' }, receivedAt: now.toISOString(), size: content.length,
        // a mailbox-only route: the report must leave through the upstream whose mailbox it is from
        upstream: route.sender.pin ? route.upstream : config.ndr.upstream, headerFrom: route.sender.from,
        // not pinned: the report goes back over the route of the recipients it reports on
        ...(via && !route.sender.pin && !config.ndr.upstream ? { route: via.name, recipientRoutes: Object.fromEntries(to.map((t) => [t, via.name])) } : {}),
        subject: `${kind === 'failed' ? 'Undeliverable' : 'Delivery delayed'}: ${subject ?? ''}`.trim(),
      }, content);
      logger.info({ id: rec.id, report: id, kind, to, reader: report.reader, from: route.sender.mailFrom || '<>', upstream: route.upstream }, 'delivery report queued');
    } catch (err) {
      await keep(to, content, err);
    }
  }
}
