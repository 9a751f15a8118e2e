/**
 * Microsoft 365 / Exchange Online Protection anti-spam headers, decoded into words:
 *   X-Forefront-Antispam-Report       CIP, CTRY, LANG, SCL, SRV, IPV, SFV, H, PTR, CAT, SFTY, SFS, DIR, SFP, PCL…
 *   X-Microsoft-Antispam              BCL (bulk complaint level), PCL
 *   X-MS-Exchange-Organization-SCL    spam confidence level
 *   X-Microsoft-Antispam-Mailbox-Delivery  dest:I / dest:J (which folder), ucf, jmr, OFR
 * Meanings follow Microsoft's "Anti-spam message headers" page; codes it does not document are
 * shown as "(not documented by Microsoft)" rather than guessed. Never throws.
 */

export interface DecodedField {
  key: string;
  value: string;
  meaning: string;
}

const SFV: Record<string, string> = {
  BLK: 'blocked: the sender is on the recipient\'s Blocked Senders list, filtering was skipped and the message treated as spam',
  NSPM: 'not spam: spam filtering found nothing',
  SFE: 'filtering skipped: the sender is on the recipient\'s Safe Senders list',
  SKA: 'filtering skipped: the sender is on an allow list of the anti-spam policy',
  SKB: 'marked spam: the sender is on a block list of the anti-spam policy',
  SKI: 'filtering skipped for another reason (for example an intra-organisation message)',
  SKN: 'marked not-spam before filtering (a mail flow rule set SCL -1)',
  SKQ: 'released from quarantine to the recipients',
  SKS: 'marked spam before filtering (a mail flow rule set the SCL)',
  SPM: 'marked spam by spam filtering',
};

const CAT: Record<string, string> = {
  AMP: 'anti-malware',
  BIMP: 'brand impersonation',
  BULK: 'bulk mail',
  DIMP: 'domain impersonation',
  FTBP: 'anti-malware common attachments filter',
  GIMP: 'mailbox intelligence impersonation',
  HPHSH: 'high confidence phishing',
  HPHISH: 'high confidence phishing',
  HSPM: 'high confidence spam',
  INTOS: 'intra-organisation phishing',
  MALW: 'malware',
  OSPM: 'outbound spam',
  PHSH: 'phishing',
  SAP: 'Safe Attachments policy',
  SPM: 'spam',
  SPOOF: 'spoofing (composite authentication failed)',
  UIMP: 'user impersonation',
  NONE: 'no protection category applied',
};

const DIR: Record<string, string> = { INB: 'inbound', OUT: 'outbound', INT: 'internal' };

const IPV: Record<string, string> = {
  CAL: 'the connecting IP is on the IP Allow List of the connection filter (filtering skipped)',
  NLI: 'the connecting IP is not on any IP reputation list',
};

const SFTY: Record<string, string> = {
  '9.19': 'domain impersonation safety tip',
  '9.20': 'user impersonation safety tip',
  '9.25': 'first-contact safety tip',
};

/** SCL value → words. */
export function describeScl(scl: number): string {
  if (scl === -1) return 'filtering skipped (trusted sender, safe list or mail flow rule): delivered to the Inbox';
  if (scl <= 1) return 'not spam: delivered to the Inbox';
  if (scl <= 4) return 'not spam (scores 2–4 are not used by Microsoft 365 today)';
  if (scl <= 6) return 'spam: delivered to Junk Email or quarantined, as the anti-spam policy says';
  return 'high confidence spam: delivered to Junk Email or quarantined, as the anti-spam policy says';
}

/** BCL value → words. */
export function describeBcl(bcl: number): string {
  if (bcl === 0) return 'not from a bulk sender';
  if (bcl <= 3) return 'from a bulk sender that generates few complaints';
  if (bcl <= 7) return 'from a bulk sender that generates a mixed number of complaints';
  return 'from a bulk sender that generates many complaints';
}

function splitSemicolonFields(value: string): [string, string][] {
  const out: [string, string][] = [];
  // SFS carries "(id)(id)…", never a ";", so a plain split is safe.
  for (const part of value.split(';')) {
    const colon = part.indexOf(':');
    if (colon <= 0) continue;
    out.push([part.slice(0, colon).trim().toUpperCase(), part.slice(colon + 1).trim()]);
  }
  return out;
}

/** Decodes X-Forefront-Antispam-Report into fields with meanings. */
export function decodeForefront(value: string): DecodedField[] {
  return splitSemicolonFields(value).map(([key, v]) => ({ key, value: v, meaning: forefrontMeaning(key, v) }));
}

function forefrontMeaning(key: string, v: string): string {
  const upper = v.toUpperCase();
  switch (key) {
    case 'CIP': return `connecting IP address: ${v || '(none)'}`;
    case 'CTRY': return `country/region of the connecting IP: ${v || '(unknown)'}`;
    case 'LANG': return `language of the message: ${v || '(unknown)'}`;
    case 'SCL': return /^-?\d+$/.test(v) ? `spam confidence level ${v}: ${describeScl(Number(v))}` : `spam confidence level ${v}`;
    case 'PCL': return `phishing confidence level ${v}`;
    case 'SRV': return upper === 'BULK' ? 'identified as bulk mail (BCL at or above the policy threshold)' : v ? `service: ${v}` : 'no bulk verdict';
    case 'IPV': return IPV[upper] ?? (v ? `IP filter verdict ${v} (not documented by Microsoft)` : 'no IP filter verdict');
    case 'SFV': return SFV[upper] ?? `spam filtering verdict ${v} (not documented by Microsoft)`;
    case 'H': return `HELO/EHLO name the sending server gave: ${v || '(none)'}`;
    case 'PTR': return v ? `reverse DNS (PTR) of the connecting IP: ${v}` : 'the connecting IP has no reverse DNS (PTR) name';
    case 'CAT': return `protection category applied: ${CAT[upper] ?? `${v} (not documented by Microsoft)`}`;
    case 'SFTY': return `safety tip: ${SFTY[v] ?? `${v} (not documented by Microsoft)`}`;
    case 'SFS': return 'spam filter rules matched (rule ids; Microsoft does not publish their meaning)';
    case 'DIR': return `direction: ${DIR[upper] ?? v}`;
    case 'SFP': return `spam filtering policy code ${v} (not documented by Microsoft)`;
    case 'ARC': return `ARC protocol headers seen: ${v}`;
    case 'X-CUSTOMSPAM': return `an advanced spam filter (ASF) option marked it: ${v}`;
    default: return '(not documented by Microsoft)';
  }
}

/** Decodes X-Microsoft-Antispam (BCL, PCL). */
export function decodeMicrosoftAntispam(value: string): DecodedField[] {
  return splitSemicolonFields(value).map(([key, v]) => ({
    key,
    value: v,
    meaning: key === 'BCL' && /^\d$/.test(v) ? `bulk complaint level ${v}: ${describeBcl(Number(v))}` : key === 'PCL' ? `phishing confidence level ${v}` : '(not documented by Microsoft)',
  }));
}

/** Decodes X-Microsoft-Antispam-Mailbox-Delivery (which folder the mailbox put it in). */
export function decodeMailboxDelivery(value: string): DecodedField[] {
  return splitSemicolonFields(value).map(([key, v]) => {
    const k = key.toLowerCase();
    let meaning = '(not documented by Microsoft)';
    if (k === 'dest') meaning = v.toUpperCase() === 'J' ? 'delivered to the Junk Email folder' : v.toUpperCase() === 'I' ? 'delivered to the Inbox' : `destination folder code ${v}`;
    else if (k === 'ucf') meaning = v === '1' ? 'the user\'s safe/blocked lists decided the folder' : 'the user\'s lists did not decide the folder';
    else if (k === 'jmr') meaning = v === '1' ? 'a junk mail rule of the mailbox applied' : 'no junk mail rule of the mailbox applied';
    else if (k === 'ofr') meaning = `folder decision: ${v}${/SpamFilter/i.test(v) ? ' (moved by the spam filter verdict)' : ''}`;
    return { key: k, value: v, meaning };
  });
}

const EXCHANGE_FIELDS: Record<string, (v: string) => string> = {
  'x-ms-exchange-organization-authas': (v) => ({
    anonymous: 'Anonymous: the sending server did not authenticate (direct send or an unmatched connector): checked like mail from the Internet',
    internal: 'Internal: sent by the organisation itself (an authenticated user, SMTP AUTH or an inbound connector from your own servers)',
    partner: 'Partner: arrived over a partner connector (TLS-secured domain)',
    external: 'External: from an authenticated server outside the organisation',
  }[v.toLowerCase()] ?? `${v} (not documented by Microsoft)`),
  'x-ms-exchange-organization-authsource': (v) => `the server that decided the authentication state: ${v}`,
  'x-ms-exchange-organization-authmechanism': (v) => `authentication mechanism code ${v} (Microsoft does not document the values)`,
  'x-ms-exchange-organization-messagedirectionality': (v) => (v.toLowerCase() === 'originating' ? 'Originating: sent from inside the organisation' : v.toLowerCase() === 'incoming' ? 'Incoming: received from outside the organisation' : v),
  'x-ms-exchange-crosstenant-authas': (v) => `as seen by the recipient tenant: ${v}`,
  'x-ms-exchange-crosstenant-fromentityheader': (v) => ({ internet: 'Internet: the message came from the Internet', hosted: 'Hosted: the message came from a Microsoft 365 tenant', hybridonprem: 'HybridOnPrem: the message came from the hybrid on-premises organisation' }[v.toLowerCase()] ?? v),
  'x-ms-exchange-organization-pcl': (v) => `phishing confidence level ${v}`,
};

/** Decodes the X-MS-Exchange-Organization-* / CrossTenant fields that say how Exchange saw the sender. */
export function decodeExchangeFields(fields: { key: string; name: string; value: string }[]): DecodedField[] {
  return fields.filter((f) => EXCHANGE_FIELDS[f.key]).map((f) => ({ key: f.name, value: f.value, meaning: EXCHANGE_FIELDS[f.key](f.value.trim()) }));
}
