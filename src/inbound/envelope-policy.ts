/**
 * Checks on MAIL FROM and RCPT TO beyond what smtp-server does itself:
 *  - parameters: only SIZE, BODY and SMTPUTF8 are implemented on MAIL, none on RCPT; anything
 *    else is "555 5.5.4" (RFC 5321 §4.1.1.11) instead of being accepted silently (the library's
 *    default, research/smtp-robustness.md §1 item 8);
 *  - "Require TLS" (530 5.7.0) and "authentication required" (530 5.7.0) at MAIL;
 *  - a domainless recipient (RCPT TO:<postmaster>) cannot be relayed anywhere: 550 5.1.3.
 * Pure functions returning a PolicyDecision.
 */
import type { PolicyDecision } from '../core/types.ts';

const MAIL_PARAMETERS = new Set(['SIZE', 'BODY', 'SMTPUTF8']);
const RCPT_PARAMETERS = new Set<string>();

/** Parameters the client gave that this relay does not implement. */
export function unknownParameters(args: Record<string, string | true> | false, command: 'MAIL' | 'RCPT'): string[] {
  if (!args) return [];
  const known = command === 'MAIL' ? MAIL_PARAMETERS : RCPT_PARAMETERS;
  return Object.keys(args).filter((k) => !known.has(k.toUpperCase()));
}

export function checkParameters(args: Record<string, string | true> | false, command: 'MAIL' | 'RCPT'): PolicyDecision {
  const unknown = unknownParameters(args, command);
  if (!unknown.length) return { verdict: 'none' };
  // Parameter names come from the client: keep them printable and short in the reply.
  const names = unknown.map((k) => k.replace(/[^\x21-\x7e]/g, '?').slice(0, 20)).join(' ');
  return { verdict: 'reject', code: 555, status: '5.5.4', message: `${command} parameter not implemented: ${names}` };
}

export function checkMailSession(ctx: { secure: boolean; requireTls: boolean; user?: string; authRequired: boolean }): PolicyDecision {
  if (ctx.requireTls && !ctx.secure) return { verdict: 'reject', code: 530, status: '5.7.0', message: 'Must issue a STARTTLS command first' };
  if (ctx.authRequired && !ctx.user) return { verdict: 'reject', code: 530, status: '5.7.0', message: 'Authentication required' };
  return { verdict: 'none' };
}

export function checkRecipientShape(recipient: string): PolicyDecision {
  if (!recipient.includes('@')) {
    return { verdict: 'reject', code: 550, status: '5.1.3', message: 'Recipient needs a domain: this relay has no local mailboxes' };
  }
  return { verdict: 'none' };
}
