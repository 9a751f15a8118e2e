/**
 * Sender policy (send-as): which envelope/From addresses a client or authenticated user may use,
 * checked before the client hears 250. Owned by the Microsoft 365 work (issue 4); empty = no checks.
 */
import { z } from 'zod';

export const senderRuleSchema = z.strictObject({
  clients: z.array(z.string()).default([]).describe('client addresses/CIDRs this rule applies to'),
  users: z.array(z.string()).default([]).describe('authenticated users this rule applies to'),
  allow: z.array(z.string()).min(1).describe('addresses the client may send as: exact, or *@domain'),
  upstream: z.string().optional().describe('upstream to use for this client\'s mail'),
});

export const sendersSchema = z.array(senderRuleSchema).default([]).describe('sender rules; a client matched by no rule may use any sender');

export type SenderRule = z.infer<typeof senderRuleSchema>;
