/**
 * Routes and routing rules (docs/routing.md): one relay, several Microsoft 365 tenants or providers.
 *
 *   routes:                        a route = upstreams tried in order (failover) + how the sender is
 *     - name: contoso                presented + who its delivery reports are from
 *       upstreams: [contoso-smtp, contoso-graph]
 *       sender: { mode: rewrite, rewriteTo: scanner@contoso.com }
 *       ndr: { from: scanner@contoso.com }
 *   routing:
 *     rules:                       first match wins; every condition given must hold
 *       - { senderDomains: [contoso.com], route: contoso }
 *       - { recipientDomains: [fabrikam.com], route: fabrikam }
 *     default: isp                 when no rule matches (default: every upstream, in order)
 *
 * A message whose recipients match different routes is split per route (one queue file, each
 * recipient with its route and state).
 */
import { z } from 'zod';

const list = (what: string) => z.array(z.string().min(1)).optional().describe(what);

export const routeSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, "_", "." and "-" only').describe('a short name used in logs, the console, metrics and rules'),
  upstreams: z.array(z.string().min(1)).min(1).describe('upstream names, tried in this order (failover)'),
  sender: z.strictObject({
    mode: z.enum(['send-as', 'rewrite', 'on-behalf']).default('send-as').describe('send-as: keep From; rewrite: From and envelope become rewriteTo (the original From goes to Reply-To); on-behalf: keep From, Sender becomes the upstream mailbox'),
    rewriteTo: z.string().optional().describe('the address mode rewrite sends as'),
    masqueradeDomain: z.string().optional().describe('replace the envelope sender\'s domain with this one on this route'),
  }).optional().describe('how the sender is presented on this route (default send-as)'),
  ndr: z.strictObject({
    from: z.string().optional().describe('address delivery reports about this route\'s messages are sent as (Microsoft 365: an address the mailbox may send as)'),
  }).optional().describe('delivery reports for messages on this route'),
}).superRefine((r, ctx) => {
  if (r.sender?.mode === 'rewrite' && !r.sender.rewriteTo) ctx.addIssue({ code: 'custom', path: ['sender', 'rewriteTo'], message: 'mode rewrite needs rewriteTo (the address to send as)' });
});

export const routingRuleSchema = z.strictObject({
  senders: list('envelope sender: exact address, *@domain or a bare domain'),
  senderDomains: list('envelope sender domains'),
  fromDomains: list('domains of the From: header'),
  recipientDomains: list('recipient domains (a message to several is split per route)'),
  clients: list('client addresses or CIDRs'),
  users: list('authenticated SMTP users'),
  route: z.string().min(1).describe('route name for a message (or recipient) this rule matches'),
});

export const routingSchema = z.strictObject({
  rules: z.array(routingRuleSchema).default([]).describe('first match wins; a rule with several conditions needs all of them'),
  default: z.string().optional().describe('route when no rule matches; default: every upstream, in order'),
});

export type RouteConfig = z.infer<typeof routeSchema>;
export type RoutingRule = z.infer<typeof routingRuleSchema>;
export type RoutingConfig = z.infer<typeof routingSchema>;
