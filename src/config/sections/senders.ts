/**
 * Sender policy (send-as): which envelope/From addresses a client or authenticated user may use,
 * checked before the client hears 250. Owned by the Microsoft 365 work (issue 4); empty = no checks.
 */
import { z } from 'zod';

export const senderRuleSchema = z.strictObject({
  clients: z.array(z.string()).default([]).describe('client addresses/CIDRs this rule applies to'),
  users: z.array(z.string()).default([]).describe('authenticated users this rule applies to'),
  allow: z.array(z.string()).min(1).describe('envelope and From addresses the client may use: exact, *@domain, or * for any'),
  upstream: z.string().optional().describe('upstream to use for this client\'s mail'),
  mode: z.enum(['send-as', 'rewrite', 'on-behalf']).default('send-as').describe('send-as: keep From (the mailbox needs Send As); rewrite: From and envelope sender become rewriteTo, the original goes to Reply-To (IIS masquerade); on-behalf: keep From, set Sender to the upstream mailbox (needs Send on Behalf)'),
  rewriteTo: z.string().optional().describe('the fixed sender address used by mode rewrite, e.g. scanner@contoso.com'),
}).superRefine((r, ctx) => {
  if (r.mode === 'rewrite' && !r.rewriteTo) ctx.addIssue({ code: 'custom', path: ['rewriteTo'], message: 'mode rewrite needs rewriteTo (the address to send as)' });
});

export const sendersSchema = z.array(senderRuleSchema).default([]).describe('sender rules; a client matched by no rule may use any sender');

export type SenderRule = z.infer<typeof senderRuleSchema>;
export type SenderMode = SenderRule['mode'];
