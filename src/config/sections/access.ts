/**
 * Who may connect and who may relay: IIS's Access tab, two separate lists, each in IIS's two modes.
 *   only:       "Only the list below" may connect / relay.
 *   all-except: "All except the list below".
 * Entries are single addresses (IPv4/IPv6) or CIDR ranges.
 */
import { z } from 'zod';
import { isRange } from '../../core/cidr.ts';

export const ipListSchema = z.strictObject({
  mode: z.enum(['only', 'all-except']).describe('"only" = only the list below; "all-except" = all except the list below'),
  list: z.array(z.string().refine(isRange, { message: 'expected an IP address or CIDR range such as 192.168.1.50 or 192.168.10.0/24' })).default([]).describe('addresses or CIDR ranges, e.g. 192.168.1.50, 192.168.10.0/24, fd00::/8'),
});

export const accessSchema = z.strictObject({
  connection: ipListSchema.prefault({ mode: 'all-except', list: [] }).describe('connection control: who may connect at all'),
  rejectAt: z.enum(['connect', 'rcpt']).default('connect').describe('refuse a client outside the connection list at connect (554 5.7.1) or only at RCPT'),
  relay: ipListSchema.prefault({ mode: 'only', list: ['127.0.0.0/8', '::1'] }).describe('relay restrictions: who may send to any domain'),
  relayForAuthenticated: z.boolean().default(true).describe('an authenticated client may relay regardless of the relay list (IIS checkbox)'),
  localDomains: z.array(z.string()).default([]).describe('recipient domains any connected client may send to, even without relay rights (exact match, lower-case)'),
});

export type IpList = z.infer<typeof ipListSchema>;
export type AccessConfig = z.infer<typeof accessSchema>;
