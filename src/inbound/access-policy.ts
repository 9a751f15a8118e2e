/**
 * Connection control and relay restrictions: IIS's two Access lists, kept separate, each in its
 * two modes ("only the list below" / "all except the list below"), with single addresses and CIDR
 * ranges (IPv4-mapped IPv6 is compared as IPv4).
 *
 * Relay is decided on the EXACT recipient domain (lower-cased, one trailing dot removed), never
 * by suffix, and a client without relay rights may not use a local part holding % ! @ or ", so
 * the classic open-relay spellings (percent hack, bang path, quoted @, look-alike domains) never
 * pass; smtp-server already strips source routes (<@a,@b:user@x> arrives as user@x).
 * See research/smtp-robustness.md §5. Each function returns a PolicyDecision; none throws.
 */
import { inRanges, parseRange, type Range } from '../core/cidr.ts';
import type { PolicyDecision } from '../core/types.ts';
import type { AccessConfig, IpList } from '../config/sections/access.ts';

/** An access list compiled once per configuration. */
export interface CompiledList {
  mode: IpList['mode'];
  ranges: Range[];
}

export function compileList(list: IpList): CompiledList {
  return { mode: list.mode, ranges: list.list.map(parseRange).filter((r): r is Range => r !== undefined) };
}

/** Whether an address passes a list in its mode. */
export function listAllows(list: CompiledList, address: string): boolean {
  const listed = inRanges(address, list.ranges);
  return list.mode === 'only' ? listed : !listed;
}

export interface CompiledAccess {
  connection: CompiledList;
  relay: CompiledList;
  rejectAt: AccessConfig['rejectAt'];
  relayForAuthenticated: boolean;
  localDomains: Set<string>;
}

export function compileAccess(access: AccessConfig): CompiledAccess {
  return {
    connection: compileList(access.connection),
    relay: compileList(access.relay),
    rejectAt: access.rejectAt,
    relayForAuthenticated: access.relayForAuthenticated,
    localDomains: new Set(access.localDomains.map(normalizeDomain)),
  };
}

export const CONNECTION_DENIED: PolicyDecision = {
  verdict: 'reject', code: 554, status: '5.7.1', message: 'Access denied: this relay does not accept connections from your address',
};

export const RELAY_DENIED: PolicyDecision = { verdict: 'reject', code: 554, status: '5.7.1', message: 'Relay access denied' };

/** Connection control, checked at connect (or remembered and applied at RCPT). */
export function checkConnection(access: CompiledAccess, address: string): PolicyDecision {
  return listAllows(access.connection, address) ? { verdict: 'accept' } : CONNECTION_DENIED;
}

/** "Example.ORG." → "example.org". */
export function normalizeDomain(domain: string): string {
  return domain.trim().toLowerCase().replace(/\.$/, '');
}

/** Splits at the LAST "@": the domain is what follows it. */
export function splitAddress(address: string): { local: string; domain: string } {
  const at = address.lastIndexOf('@');
  return at < 0 ? { local: address, domain: '' } : { local: address.slice(0, at), domain: address.slice(at + 1) };
}

/** Characters that make a local part route somewhere else on some MTA (percent hack, bang path, quoting). */
const ROUTING_CHARACTERS = /[%!@"]/;

/**
 * The relay decision for one recipient: clients in the relay list (or authenticated, when
 * allowed) may send anywhere; others only to a local domain, by exact match.
 */
export function checkRelay(access: CompiledAccess, ctx: { clientAddress: string; user?: string; recipient: string }): PolicyDecision {
  if (listAllows(access.relay, ctx.clientAddress)) return { verdict: 'accept', reason: 'client is in the relay list' };
  if (ctx.user && access.relayForAuthenticated) return { verdict: 'accept', reason: 'authenticated client' };
  const { local, domain } = splitAddress(ctx.recipient);
  if (!domain || ROUTING_CHARACTERS.test(local)) return RELAY_DENIED;
  if (access.localDomains.has(normalizeDomain(domain))) return { verdict: 'accept', reason: 'local domain' };
  return RELAY_DENIED;
}
