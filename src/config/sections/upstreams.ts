/**
 * Upstreams (IIS: Delivery → Advanced → Smart host, and Outbound Security). Each is one URL:
 *
 *   smtp+starttls://host[:port]   STARTTLS required (default port 587) — the default and the safe choice
 *   smtps://host[:port]           implicit TLS (default port 465)
 *   smtp://host[:port]            no TLS at all (default port 25); only when you mean it
 *   graph://TENANT/MAILBOX        Microsoft Graph sendMail (see docs/microsoft-365.md)
 *   connector://DOMAIN            Microsoft 365 connector / direct send to the tenant's MX endpoint
 *
 * Upstreams are tried in the order listed (failover): the first that answers takes the message.
 */
import { z } from 'zod';
import { secretSchema } from '../secret.ts';

export const UPSTREAM_SCHEMES = ['smtp+starttls', 'smtps', 'smtp', 'graph', 'connector'] as const;

export const upstreamSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, "_", "." and "-" only').describe('a short name used in logs, the console and sender rules'),
  url: z.string().refine((u) => UPSTREAM_SCHEMES.some((s) => u.startsWith(`${s}://`)), {
    message: `must start with one of ${UPSTREAM_SCHEMES.map((s) => `${s}://`).join(', ')}`,
  }).describe('where to deliver, e.g. smtp+starttls://smtp.office365.com:587'),
  auth: z.enum(['none', 'basic', 'xoauth2']).optional().describe('upstream authentication; default basic when a username is set, none otherwise'),
  username: z.string().optional().describe('account to authenticate as (for Microsoft 365, the mailbox address)'),
  password: secretSchema.optional().describe('password for basic auth: a string, { env: NAME } or { file: PATH }'),
  verifyCertificate: z.boolean().default(true).describe('check the upstream\'s TLS certificate (leave on)'),
  ca: z.string().optional().describe('PEM file of extra CA certificates to trust for this upstream'),
  heloName: z.string().optional().describe('name to give in EHLO (IIS "Fully-qualified domain name"); default: hostname'),
  maxConnections: z.number().int().min(1).default(5).describe('parallel connections to this upstream'),
  maxMessagesPerConnection: z.number().int().min(1).default(20).describe('messages sent over one connection before it is renewed (IIS default 20)'),
  maxRecipientsPerMessage: z.number().int().min(1).optional().describe('split messages with more recipients into several submissions (Microsoft 365: 500)'),
  maxMessagesPerMinute: z.number().int().min(1).optional().describe('pace submissions through this upstream (Microsoft 365 SMTP AUTH: 30 per mailbox)'),
  maxRecipientsPerDay: z.number().int().min(1).optional().describe('recipients per rolling 24 h; more wait in the queue (Microsoft 365: 10,000)'),
  timeout: z.number().int().min(1).default(120).describe('seconds to wait for each upstream reply'),
});

export type UpstreamConfig = z.infer<typeof upstreamSchema>;
