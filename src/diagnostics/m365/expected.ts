/**
 * The DNS records Microsoft 365 asks a custom domain to publish (worldwide cloud), as data: name,
 * type, what is expected, how important it is, and the fix in words. Sources: Microsoft's
 * "External DNS records for Microsoft 365", "Add DNS records to connect your domain", the DKIM and
 * DMARC configuration pages and MC1048624 (the *.mx.microsoft MX form for new domains from July
 * 2026), as summarised in the project's research notes (m365.md §8).
 *
 * Importance:
 *   required       mail does not work as expected without it (MX, autodiscover, SPF)
 *   recommended    needed for DKIM signing and DMARC alignment
 *   conditional    only with a feature (domain verification in progress, Intune/MDM)
 *   optional       legacy Skype for Business Online records (retired 2021; still listed by some guides)
 *   must-not-exist the 21Vianet-only msoid CNAME, which breaks sign-in on a worldwide tenant
 */

export type Importance = 'required' | 'recommended' | 'conditional' | 'optional' | 'must-not-exist';

/** "contoso.com" → "contoso-com", the token Microsoft puts in MX and DKIM targets. */
export function domainDashes(domain: string): string {
  return domain.replace(/\./g, '-');
}

/** The legacy MX target: <domain-dashes>.mail.protection.outlook.com. */
export function legacyMxTarget(domain: string): string {
  return `${domainDashes(domain)}.mail.protection.outlook.com`;
}

/** *.mail.protection.outlook.com or the DNSSEC form <token>.<x>-v1.mx.microsoft. */
export const MICROSOFT_MX = /^[a-z0-9-]+\.(mail\.protection\.outlook\.com|[a-z0-9]+-v1\.mx\.microsoft)$/i;

/** MX forms retired before 2018: they answer "451 4.4.62 Mail sent to the wrong Office 365 region". */
export const RETIRED_MX = /^(mail\.eo\.outlook\.com|mail\.messaging\.microsoft\.com|mail\.global\.frontbridge\.com)$/i;

/** The DKIM CNAME targets Microsoft hands out, old (onmicrosoft.com) and new (dkim.mail.microsoft) form. */
export function dkimTargetPattern(domain: string, selector: 1 | 2, tenantPrefix?: string): RegExp {
  const token = domainDashes(domain).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const tenant = tenantPrefix ? tenantPrefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') : '[a-z0-9-]+';
  return new RegExp(`^selector${selector}-${token}\\._domainkey\\.${tenant}\\.(onmicrosoft\\.com|[a-z0-9]+-v1\\.dkim\\.mail\\.microsoft)$`, 'i');
}

export function dkimExampleTarget(domain: string, selector: 1 | 2, tenantPrefix?: string): string {
  return `selector${selector}-${domainDashes(domain)}._domainkey.${tenantPrefix ?? '<tenant>'}.onmicrosoft.com`;
}

export interface LegacyRecord {
  id: string;
  label: string;
  name: string;
  type: 'CNAME' | 'SRV';
  importance: Importance;
  /** CNAME target, or SRV "priority weight port target". */
  expected: string;
  /** Accepted alternatives (host guides differ). */
  alternatives?: string[];
  why: string;
}

/** The Skype for Business / Intune / 21Vianet records, relative to the domain. */
export const LEGACY_RECORDS: LegacyRecord[] = [
  { id: 'sip', label: 'Skype for Business: sip', name: 'sip', type: 'CNAME', importance: 'optional', expected: 'sipdir.online.lync.com', why: 'legacy Skype for Business Online (retired 2021-07-31); only for old SfB clients and phones' },
  { id: 'lyncdiscover', label: 'Skype for Business: lyncdiscover', name: 'lyncdiscover', type: 'CNAME', importance: 'optional', expected: 'webdir.online.lync.com', why: 'legacy Skype for Business Online discovery; some PowerShell cmdlets still used it' },
  { id: 'sip-tls', label: 'Skype for Business: _sip._tls', name: '_sip._tls', type: 'SRV', importance: 'optional', expected: '100 1 443 sipdir.online.lync.com', why: 'legacy Skype for Business Online; "may be needed" for Teams-only tenants with SfB phones' },
  { id: 'sipfederation', label: 'Teams federation: _sipfederationtls._tcp', name: '_sipfederationtls._tcp', type: 'SRV', importance: 'optional', expected: '100 1 5061 sipfed.online.lync.com', why: 'the SfB-era record Microsoft still ties to Teams federation with other organisations' },
  { id: 'enterpriseregistration', label: 'Intune: enterpriseregistration', name: 'enterpriseregistration', type: 'CNAME', importance: 'conditional', expected: 'enterpriseregistration.windows.net', why: 'device registration; only with Intune / Basic Mobility and Security' },
  { id: 'enterpriseenrollment', label: 'Intune: enterpriseenrollment', name: 'enterpriseenrollment', type: 'CNAME', importance: 'conditional', expected: 'enterpriseenrollment.manage.microsoft.com', alternatives: ['enterpriseenrollment-s.manage.microsoft.com'], why: 'device enrollment; only with Intune / MDM' },
];
