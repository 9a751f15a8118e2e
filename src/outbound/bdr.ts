/**
 * The .BDR text: why a message is in badmail/, for an admin opening it in Notepad (the spool writes
 * it with CRLF line ends). Per failed recipient: what the upstream said, what it usually means and
 * what to do (explain.ts), then how to resend the .BAD file. Pure.
 */
import type { Outcome } from '../core/types.ts';
import type { QueueRecord } from '../queue/record.ts';
import { explainOutcome } from './explain.ts';

const label = (name: string) => `${name}:`.padEnd(13);

export function buildBdrText(record: QueueRecord, failed: Outcome[], now: Date, headline?: string): string {
  const env = record.envelope;
  const lines = [
    headline ?? 'smarthost could not deliver this message to the recipients below.',
    '',
    `${label('Queue id')}${record.id}`,
    `${label('Received')}${env.receivedAt} from ${env.client.address || '(pickup folder)'} (${env.client.source}${env.client.user ? `, user ${env.client.user}` : ''})`,
    `${label('Sender')}${env.mailFrom || '<> (a delivery report)'}`,
    `${label('Subject')}${env.subject ?? '(none)'}`,
    `${label('Failed at')}${now.toISOString()}`,
    `${label('Attempts')}${record.attempts + 1}${record.possibleDuplicate ? ' (an upstream may have received an earlier copy)' : ''}`,
    '',
  ];
  for (const o of failed) {
    const why = explainOutcome(o);
    lines.push(
      `${label('Recipient')}${o.recipient}`,
      `  ${label('Upstream')}${o.transport}${o.remoteMta ? ` (${o.remoteMta})` : ''}`,
      `  ${label('It said')}${o.diagnostic ?? o.reason ?? `status ${o.status}`}`,
      `  ${label('Meaning')}${why.meaning}`,
      `  ${label('What to do')}${why.fix}`,
      '',
    );
  }
  lines.push(
    `To send it again once the cause is fixed, copy ${record.id}.BAD into the pickup folder:`,
    'it starts with X-Sender / X-Receiver lines naming the original sender and these recipients.',
  );
  return lines.join('\r\n');
}
