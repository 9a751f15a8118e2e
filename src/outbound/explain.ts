/**
 * What an upstream's reply usually means and what the admin should do, in plain words: the text of
 * .BDR files, NDRs and the console's "why". Microsoft 365's own replies are looked up first (its
 * table lives in src/m365/errors.ts); then a generic table keyed by enhanced status code; then the
 * reply's class. Pure; always returns something.
 */
import { explainM365 } from '../m365/errors.ts';
import type { Outcome } from '../core/types.ts';

export interface Explanation {
  meaning: string;
  fix: string;
  /** The route is broken (credentials, tenant set-up), not the message: park the upstream, don't bounce. */
  routeBroken: boolean;
}

interface Rule {
  /** Enhanced status prefix ('5.7.1' matches exactly; '4.4.' matches the family). */
  status?: string;
  /** Reply text pattern, tested when given. */
  text?: RegExp;
  meaning: string;
  fix: string;
  /** The fix for the sender of the message (an NDR), when `fix` is the admin's job (resend a .BAD file). */
  senderFix?: string;
  routeBroken?: boolean;
}

const RULES: Rule[] = [
  { status: '5.7.1', text: /send as|permission/i, meaning: 'The upstream refuses to let the authenticated account send as this sender address ("Client does not have permissions to send as this sender").', fix: 'Give the mailbox used for authentication Send As permission on that address, or make the device send as that mailbox\'s own address.' },
  { status: '5.7.60', meaning: 'The authenticated account may not send as this sender address.', fix: 'Give the mailbox used for authentication Send As permission on that address, or make the device send as that mailbox\'s own address.' },
  { status: '5.7.57', meaning: 'The upstream wants the client to authenticate before sending ("Client was not authenticated").', fix: 'Set username and password (or auth: xoauth2) for this upstream, and use port 587 with STARTTLS.', routeBroken: true },
  { status: '5.7.139', meaning: 'The upstream refused the sign-in: SMTP AUTH is disabled for the mailbox or the tenant, or security defaults block it.', fix: 'Enable authenticated SMTP for the mailbox (or tenant), or switch this upstream to OAuth2, Graph or a connector.', routeBroken: true },
  { status: '5.7.3', text: /auth/i, meaning: 'The upstream refused the username or password.', fix: 'Check the username and password of this upstream (an expired or changed password is the usual cause), then release the upstream.', routeBroken: true },
  { status: '5.7.8', meaning: 'The upstream refused the credentials.', fix: 'Check the username and password of this upstream, then release the upstream.', routeBroken: true },
  { status: '5.7.0', text: /auth/i, meaning: 'The upstream requires authentication that did not succeed.', fix: 'Check this upstream\'s credentials and TLS settings, then release the upstream.', routeBroken: true },
  { status: '5.7.1', text: /relay/i, meaning: 'The upstream does not accept to relay this message for us.', fix: 'Authenticate to the upstream, or have its admin allow this relay\'s address (for Microsoft 365: a connector).' },
  { status: '5.7.1', meaning: 'The upstream refused the message by policy.', fix: 'Read the upstream\'s text above; usually the sender address or the sending account is not allowed.' },
  { status: '5.1.1', meaning: 'The recipient address does not exist at the destination.', fix: 'Check the address for typing errors; the message cannot be delivered to it.' },
  { status: '5.1.10', meaning: 'The recipient address does not exist at the destination.', fix: 'Check the address for typing errors; the message cannot be delivered to it.' },
  { status: '5.1.8', meaning: 'The sender address was refused (unknown or badly formed sender domain).', fix: 'Configure the device to use a real sender address in a domain that exists, or set a masquerade domain.' },
  { status: '5.2.2', meaning: 'The recipient\'s mailbox is full.', fix: 'The recipient must free space; send again later.' },
  { status: '4.2.2', meaning: 'The recipient\'s mailbox is full for now.', fix: 'Nothing: smarthost retries; the recipient should free space.' },
  { status: '5.3.4', meaning: 'The message is too big for the upstream or the recipient.', fix: 'Send a smaller message (lower scan resolution, fewer pages) or raise the limit at the destination.' },
  { status: '5.2.3', meaning: 'The message is too big for the upstream or the recipient.', fix: 'Send a smaller message (lower scan resolution, fewer pages) or raise the limit at the destination.' },
  { status: '5.6.', meaning: 'The upstream refused the message\'s content or format.', fix: 'Check how the device builds the message (line ends, encoding); the upstream\'s text names the problem.' },
  { status: '4.7.5', meaning: 'The TLS connection to the upstream failed (certificate not trusted, wrong name, or TLS refused).', fix: 'Check the upstream\'s host name and certificate; add its CA with `ca:` if it uses a private one.' },
  { status: '4.4.7', meaning: 'The message stayed in the queue too long without being delivered and has expired.', fix: 'Find out why the upstream kept refusing or was unreachable (see the earlier attempts), then resend the .BAD file through pickup/.', senderFix: 'Send the message again later; if this happens again, tell your IT administrator (the relay keeps a copy of this message for them).' },
  { status: '4.4.', meaning: 'The upstream could not be reached, or the connection broke or timed out.', fix: 'Check the network path, DNS and firewall to the upstream; smarthost retries on its schedule.' },
  { status: '4.7.0', text: /auth/i, meaning: 'The upstream refused our credentials.', fix: 'Check the upstream\'s username and password, then release the upstream.', routeBroken: true },
];

function ruleMatches(rule: Rule, status: string, text: string): boolean {
  if (rule.status && !(rule.status.endsWith('.') ? status.startsWith(rule.status) : status === rule.status)) return false;
  if (rule.text && !rule.text.test(text)) return false;
  return true;
}

/**
 * Who reads the explanation: the admin (.BDR, console, logs, the NDR's admin copy) or the sender of
 * the message (the NDR to an end user, who has no badmail folder to resend from).
 */
export type Reader = 'admin' | 'sender';

/** Explains an upstream reply: reply code, enhanced status (if any) and the reply text. */
export function explainReply(code: number | undefined, enhanced: string | undefined, text: string, reader: Reader = 'admin'): Explanation {
  // Microsoft 365's own table (src/m365/errors.ts) comes first: the one place it is consulted.
  const m365 = explainM365(code ?? 0, enhanced, text);
  if (m365) return { meaning: m365.meaning, fix: m365.fix, routeBroken: m365.routeBroken };
  const status = enhanced ?? '';
  for (const rule of RULES) if (ruleMatches(rule, status, text)) return { meaning: rule.meaning, fix: (reader === 'sender' && rule.senderFix) || rule.fix, routeBroken: rule.routeBroken ?? false };
  const klass = status[0] ?? (code ? String(code)[0] : '4');
  if (klass === '5') return { meaning: 'The upstream refused this message permanently.', fix: 'Read the upstream\'s text above; correct the address or the message and send it again.', routeBroken: false };
  return { meaning: 'The upstream asked us to try again later.', fix: 'Nothing for now: smarthost retries on its schedule.', routeBroken: false };
}

/**
 * A connector (tenant MX endpoint) has no mailbox: "send as" grants mean nothing there. What counts is
 * that the From domain is an accepted domain of the tenant and that the connector recognises the relay
 * (its certificate's name, or its IP). research m365.md §4.2.
 */
const CONNECTOR_SEND_AS: Pick<Explanation, 'meaning' | 'fix'> = {
  meaning: 'The tenant\'s MX endpoint refused this sender through the connector: the From (or envelope) domain is not an accepted domain of the tenant, or the inbound connector does not recognise this relay.',
  fix: 'Add and verify the sender\'s domain as an accepted domain in the Microsoft 365 admin center, and check the inbound connector (Exchange admin center, Mail flow, Connectors): its certificate name must match connector.clientCertificate\'s CN/SAN (an accepted domain), or its IP list this relay\'s public IP. Send As grants (Add-RecipientPermission) do not apply to a connector.',
};

/** Explanation for an Outcome (uses its reply code, status and diagnostic). */
export function explainOutcome(o: Outcome, reader: Reader = 'admin'): Explanation {
  const text = o.diagnostic ?? o.reason ?? '';
  const e = explainReply(o.replyCode, o.status, text, reader);
  // the sender's report keeps its own advice; the connector's is for the admin
  if (o.transport === 'connector' && (/Add-RecipientPermission|Send As/.test(e.fix) || /send as|SendAsDenied/i.test(text))) return { ...e, meaning: CONNECTOR_SEND_AS.meaning, fix: reader === 'admin' ? CONNECTOR_SEND_AS.fix : e.fix };
  return e;
}
