/** Queue, retries, expiry and non-delivery reports (IIS: Delivery → Outbound, Messages → NDR copy). */
import { z } from 'zod';
import { duration } from '../units.ts';

export const deliverySchema = z.strictObject({
  retry: z.array(duration()).min(1).prefault(['15m', '30m', '60m', '240m']).describe('wait before each retry; the last value repeats (IIS: 15, 30, 60, then every 240 minutes)'),
  delayNotification: duration().prefault('12h').describe('tell the sender a message is delayed after this long (0 = never)'),
  expiration: duration().prefault('2d').describe('give up and return the message after this long in the queue'),
  concurrency: z.number().int().min(1).default(20).describe('messages delivered in parallel (each upstream still holds at most its maxConnections)'),
  scanInterval: duration().prefault('5s').describe('how often the queue is checked for messages due'),
  masqueradeDomain: z.string().optional().describe('replace the domain of the envelope sender (MAIL FROM) with this one, as IIS\'s masquerade domain'),
  upstreamProbeInterval: duration().prefault('15m').describe('an upstream parked because it refused our credentials is tried again after this long (or at once when released)'),
  thread: z.boolean().default(true).describe('speak SMTP to the upstreams from a thread of its own, so a busy relay uses two CPU cores (false: one thread, about 33 MB less memory; XOAUTH2 upstreams always use the main thread)'),
  maxHops: z.number().int().min(1).default(30).describe('refuse a message with more Received: headers than this (mail loop)'),
});

export const ndrSchema = z.strictObject({
  to: z.enum(['sender', 'admin', 'both', 'off']).optional().describe('who gets a non-delivery report: the envelope sender, the admin copy address, both, or nobody (default: sender, and both when adminCopy is set)'),
  adminCopy: z.string().optional().describe('address for a copy of every NDR (IIS "Send copy of Non-Delivery Report to"); alone, it adds the copy to the sender\'s report'),
  from: z.string().optional().describe('From address of NDRs; default MAILER-DAEMON@hostname, or through Microsoft 365 SMTP AUTH/Graph the upstream\'s mailbox (Microsoft refuses any other)'),
  upstream: z.string().optional().describe('upstream name used to send NDRs; default: the upstream the message was sent to, else the first'),
});

export type DeliveryConfig = z.infer<typeof deliverySchema>;
export type NdrConfig = z.infer<typeof ndrSchema>;
