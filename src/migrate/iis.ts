/**
 * IIS 6 SMTP virtual server → smarthost.yaml, with a verdict for every metabase property.
 *
 * Property names, units and values are those of the IIS 6 metabase reference (Windows Server 2003,
 * "Metabase Property Reference", learn.microsoft.com/previous-versions/...): e.g. SmartHostType
 * 0/1/2 (cc739348), RelayForAuth 0 / -1 or 1 (cc778501), SmtpRemoteProgressiveRetry (cc758615),
 * SmtpRemoteDelayExpireMinutes / SmtpRemoteNDRExpireMinutes in minutes (cc728424, ms525067),
 * RouteUserName / RoutePassword (36948 / 36949, the password kept encrypted: SECURE attribute).
 * RouteAction's bits are listed in the community notes of its reference page (cc757175):
 * SMTP_SSL 0x4, SMTP_AUTH_NTLM 0x80, SMTP_AUTH_CLEARTEXT 0x100. See docs/migrate-iis.md.
 *
 * Conservative where IIS was permissive by accident: an empty RelayIpList (IIS: "all except" an
 * empty list, an open relay) becomes "only" an empty list and the report asks the admin to act.
 */
import { Document, isMap, isScalar, isSeq, type Node as YamlNode, type Pair, type Scalar } from 'yaml';
import { SmarthostError } from '../core/errors.ts';
import { decodeIpSecList, IpSecError, parseHex, type IpSecList } from './ipsec.ts';
import { readSmtpServers, type MetabaseProperty, type SmtpVirtualServer } from './metabase.ts';

export type Verdict = 'admin' | 'mapped' | 'no-equivalent' | 'not-needed' | 'unknown';

export interface ReportItem {
  property: string;
  /** The value as shown in the report (secrets and long binary values abbreviated). */
  value: string;
  /** absent: the property is not set; derived: a finding drawn from several properties. */
  from: 'server' | 'service' | 'absent' | 'derived';
  line?: number;
  verdict: Verdict;
  /** smarthost key it went to, for mapped (and some admin) items. */
  key?: string;
  note: string;
}

export interface ImportResult {
  server: SmtpVirtualServer;
  /** The servers found in the file (for listing). */
  servers: SmtpVirtualServer[];
  yaml: string;
  items: ReportItem[];
  needsAdmin: boolean;
}

/** Values IIS writes for "no limit" (4294967295 = 0xFFFFFFFF; the UI's "unlimited" connections is 2000000000). */
const UNLIMITED = new Set([0, 4294967295, 2000000000, -1]);

/** Properties that configure things smarthost does differently or not at all, with the reason. */
const NOT_NEEDED: Array<[RegExp, string]> = [
  [/^ServerComment$/i, 'the virtual server\'s display name (shown at the top of this report)'],
  [/^(ServerAutoStart|ServerState|ServerSize|ServerListenBacklog|ServerListenTimeout|MaxEndpointConnections|KeyType|AdminACL|AdminACLBin|Win32Error|ClusterEnabled|ShutdownLatency)$/i, 'IIS service bookkeeping; smarthost runs as its own service'],
  [/^Log\w*$/i, 'IIS logging; smarthost logs every session and delivery attempt (log:) and keeps the message history (history:)'],
  [/^(EnableReverseDnsLookup|SmtpUseTcpDns|SmtpDnsServers?|NameResolutionType|SmtpAdvQueueDll|SmtpLocalDomains|SmtpInboundCommandSupportOptions|SmtpOutboundCommandSupportOptions|SmtpClearTextProvider|SmtpAuthTimeout|SmtpBdatTimeout|SmtpConnectTimeout|SmtpMailFromTimeout|SmtpRcptToTimeout|SmtpDataTimeout|SmtpHeloTimeout|SmtpTurnTimeout|SmtpRsetTimeout|SmtpSaslTimeout|SmtpIpRestrictionFlag|SmtpEventlogLevel|SmtpDomainValidationFlags|SmtpSSLRequireTrustedCA|SmtpSSLCertHostnameValidation|SmtpDSNOptions|SmtpDSNLanguageID|SmtpRemoteRetryThreshold|SmtpDisableRelay|SmtpRoutingTableType|SmtpDirectoryType|SmtpRouteAction\w*|SmtpServiceVersion|SmtpAllowExpnCommand|AllowVerify|AllowExpand|LimitRemoteConnections|ShouldDeliver|ShouldPickupMail|ShouldPipelineIn|ShouldPipelineOut|SendBadmailTo|AlwaysUseTls|EtrnDays|EtrnSubdomains|DisableSocketPooling|FlushMailFile|SaslLogonDomain|RoutingSources|RoutingDll|RouteActionString|PostmasterName|PostmasterEmail|UpdatedDefaultDomain|UpdatedFQDN|ConnectResponse|InboundCommandSupportOptions|OutboundCommandSupportOptions|EtrnInterval|LocalDelayExpireMinutes|LocalNDRExpireMinutes)$/i, 'an IIS SMTP internal or a protocol detail smarthost handles itself'],
  [/^(SmtpLocalDelayExpireMinutes|SmtpLocalNDRExpireMinutes|LocalRetryInterval|LocalRetryAttempts|SmtpLocalRetryMinutes|SmtpLocalRetryAttempts)$/i, 'local delivery (the Drop folder); smarthost relays only, it delivers nothing locally'],
  [/^(RemoteRetryInterval|RemoteRetryAttempts|SmtpRemoteRetryMinutes|SmtpRemoteRetryAttempts)$/i, 'documented as reserved for Exchange; the Delivery tab\'s retry intervals are SmtpRemoteProgressiveRetry'],
  [/^DoMasquerade$/i, 'IIS\'s on/off switch for masquerading; smarthost masquerades when delivery.masqueradeDomain is set'],
  [/^RemoteSmtpSecurePort$/i, 'IIS\'s port for SSL connections to remote servers; smarthost takes the port from the upstream URL'],
  [/^(SecureBindings)$/i, 'no separate secure binding was set'],
];

interface Ctx {
  file: string;
  server: SmtpVirtualServer;
  items: ReportItem[];
  cfg: Record<string, unknown>;
  comments: Array<{ path: (string | number)[]; text: string }>;
  handled: Set<string>;
}

export function importIis(text: string, file: string, opts: { server?: string } = {}): ImportResult {
  const servers = readSmtpServers(text, file);
  const server = pickServer(servers, file, opts.server);
  const ctx: Ctx = { file, server, items: [], cfg: {}, comments: [], handled: new Set() };
  mapServer(ctx);
  const yaml = toYaml(ctx, file);
  const order: Verdict[] = ['admin', 'mapped', 'no-equivalent', 'not-needed', 'unknown'];
  const items = [...ctx.items].sort((a, b) => order.indexOf(a.verdict) - order.indexOf(b.verdict));
  return { server, servers, yaml, items, needsAdmin: items.some((i) => i.verdict === 'admin') };
}

export function describeServer(s: SmtpVirtualServer): string {
  return `${s.id}  ${s.name || '(no name)'}  ${s.location}  bindings ${s.bindings || '(none)'}`;
}

function pickServer(servers: SmtpVirtualServer[], file: string, wanted?: string): SmtpVirtualServer {
  const list = servers.map((s) => `  ${describeServer(s)}`).join('\n');
  if (wanted !== undefined) {
    const s = servers.find((x) => x.id.toLowerCase() === wanted.toLowerCase());
    if (!s) throw new SmarthostError('SH_USAGE', `${file}: there is no SMTP virtual server ${wanted}; the file has:\n${list}`);
    return s;
  }
  if (servers.length > 1) {
    throw new SmarthostError('SH_USAGE', `${file} holds ${servers.length} SMTP virtual servers; choose one with --server N:\n${list}`);
  }
  return servers[0];
}

// ---------------------------------------------------------------------------------------------

function prop(ctx: Ctx, name: string): MetabaseProperty | undefined {
  for (const [k, v] of ctx.server.properties) if (k.toLowerCase() === name.toLowerCase()) return v;
  return undefined;
}

function report(ctx: Ctx, p: MetabaseProperty | string, verdict: Verdict, note: string, key?: string, shown?: string): void {
  const mp = typeof p === 'string' ? undefined : p;
  const name = typeof p === 'string' ? p : p.name;
  ctx.handled.add(name.toLowerCase());
  // Findings such as "Outbound TLS" or "IPSecurity (domain names)" are not metabase properties.
  const derived = !mp && name.includes(' ');
  ctx.items.push({ property: name, value: shown ?? (mp ? show(mp.value) : '(not set)'), from: mp ? mp.from : derived ? 'derived' : 'absent', line: mp?.line, verdict, key, note });
}

function show(v: string): string {
  const s = v.trim().split(/\s+/).join(' ');
  return s.length > 60 ? `${s.slice(0, 40)}… (${s.length} characters)` : s;
}

function fail(ctx: Ctx, p: MetabaseProperty, why: string): never {
  const where = p.from === 'service' ? '/LM/SmtpSvc (inherited)' : ctx.server.location;
  throw new SmarthostError('SH_CONFIG_INVALID', `${p.name} of ${where}: ${why}`, { file: ctx.file, line: p.line });
}

/**
 * Flag names MetaBase.xml writes instead of numbers for properties whose schema defines flags,
 * e.g. AuthFlags="AuthAnonymous | AuthBasic" (AuthFlags and AccessSSLFlags metabase properties).
 */
const FLAG_NAMES: Record<string, number> = {
  authanonymous: 1, authbasic: 2, authntlm: 4, authmd5: 16, authpassport: 64,
  accessssl: 8, accessssl128: 256, accesssslnegotiatecert: 32, accesssslrequirecert: 64, accesssslmapcert: 128,
};

/** A DWORD as IIS writes it: decimal (negative in WMI exports), 0x-hex, or "Flag | Flag" names. */
function dword(ctx: Ctx, p: MetabaseProperty, flags = false): number {
  const t = p.value.trim();
  if (flags && /^[A-Za-z][\w\s|]*$/.test(t)) {
    let n = 0;
    for (const name of t.split('|').map((x) => x.trim()).filter(Boolean)) {
      const v = FLAG_NAMES[name.toLowerCase()];
      if (v === undefined) fail(ctx, p, `"${name}" is not a flag import-iis knows (expected a number or names such as AuthAnonymous | AuthBasic)`);
      n |= v;
    }
    return n;
  }
  const n = /^0x[0-9a-f]+$/i.test(t) ? Number.parseInt(t, 16) : /^-?\d+$/.test(t) ? Number(t) : Number.NaN;
  if (!Number.isFinite(n)) fail(ctx, p, `expected a number, got "${show(p.value)}"`);
  return n;
}

function bool(p: MetabaseProperty): boolean {
  return /^(true|1|-1|4294967295)$/i.test(p.value.trim());
}

function set(ctx: Ctx, path: (string | number)[], value: unknown, comment?: string): void {
  let cur = ctx.cfg as Record<string | number, unknown>;
  for (let i = 0; i < path.length - 1; i++) {
    cur[path[i]] ??= typeof path[i + 1] === 'number' ? [] : {};
    cur = cur[path[i]] as Record<string | number, unknown>;
  }
  cur[path[path.length - 1]] = value;
  if (comment) ctx.comments.push({ path, text: comment });
}

/** 720 → "12h", 2880 → "2d", 45 → "45m": the units an admin reads at a glance. */
function minutesText(min: number): string {
  if (min > 0 && min % 1440 === 0) return `${min / 1440}d`;
  if (min > 0 && min % 60 === 0) return `${min / 60}h`;
  return `${min}m`;
}

function sizeText(bytes: number): string {
  if (bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)}MB`;
  if (bytes % 1024 === 0) return `${bytes / 1024}KB`;
  return String(bytes);
}

// ---------------------------------------------------------------------------------------------

function mapServer(ctx: Ctx): void {
  const s = ctx.server;
  // Key order of the YAML file: identity, listeners, access, auth, limits, upstreams, delivery, ndr.
  for (const k of ['hostname', 'listen', 'access', 'auth', 'limits', 'upstreams', 'delivery', 'ndr']) ctx.cfg[k] = undefined;

  const fqdn = prop(ctx, 'FullyQualifiedDomainName');
  if (fqdn && fqdn.value.trim()) {
    set(ctx, ['hostname'], fqdn.value.trim(), 'IIS: Delivery → Advanced → Fully-qualified domain name');
    report(ctx, fqdn, 'mapped', 'name in the banner, EHLO and Received headers', 'hostname');
  } else report(ctx, fqdn ?? 'FullyQualifiedDomainName', 'not-needed', 'not set: smarthost uses this machine\'s name, as IIS did');

  mapBindings(ctx);
  mapAccess(ctx);
  mapAuth(ctx);
  mapLimits(ctx);
  mapUpstream(ctx);
  mapDelivery(ctx);
  mapFolders(ctx);
  mapDomains(ctx);

  for (const p of s.properties.values()) {
    if (ctx.handled.has(p.name.toLowerCase())) continue;
    const known = NOT_NEEDED.find(([re]) => re.test(p.name));
    if (p.name.toLowerCase() === 'securebindings' && p.value.trim()) {
      report(ctx, p, 'admin', 'IIS had a TLS-only binding; smarthost: add a listener with tls: implicit and set tls.cert / tls.key (the certificate exported as PEM)', 'listen[].tls');
    } else if (known) report(ctx, p, 'not-needed', known[1]);
    else report(ctx, p, 'unknown', 'not recognised by import-iis: left out; check in IIS Manager whether it matters');
  }
}

function mapBindings(ctx: Ctx): void {
  const p = prop(ctx, 'ServerBindings');
  if (!p || !p.value.trim()) {
    set(ctx, ['listen'], [{ address: '0.0.0.0', port: 25 }], 'IIS: General → IP address (All Unassigned), port 25');
    report(ctx, p ?? 'ServerBindings', 'mapped', 'not set: IIS listened on all addresses, port 25', 'listen');
    return;
  }
  const listen: Array<{ address: string; port: number }> = [];
  for (const b of p.value.trim().split(/\s+/)) {
    const m = /^([^:]*):(\d+):(.*)$/.exec(b);
    if (!m) fail(ctx, p, `"${b}" is not IP:port:hostname (e.g. ":25:" or "192.168.1.10:25:")`);
    const port = Number(m[2]);
    if (port < 1 || port > 65535) fail(ctx, p, `port ${m[2]} in "${b}" is not 1–65535`);
    const address = m[1] || '0.0.0.0';
    if (!listen.some((l) => l.address === address && l.port === port)) listen.push({ address, port });
  }
  set(ctx, ['listen'], listen, 'IIS: General → IP address / Advanced (ServerBindings); smarthost also offers STARTTLS with a self-signed certificate (tls:)');
  const notes = [listen.map((l) => `${l.address}:${l.port}`).join(', ')];
  if (listen.some((l) => l.address !== '0.0.0.0')) notes.push('the new machine must have this address (or change it to 0.0.0.0, and keep access lists)');
  if (listen.some((l) => l.port < 1024)) notes.push('a port below 1024 needs root or CAP_NET_BIND_SERVICE on Linux');
  report(ctx, p, 'mapped', notes.join('; '), 'listen');
}

function decodeList(ctx: Ctx, p: MetabaseProperty): IpSecList {
  try {
    return decodeIpSecList(parseHex(p.value));
  } catch (e) {
    if (e instanceof IpSecError) fail(ctx, p, `cannot decode the IP list: ${e.message}`);
    throw e;
  }
}

/** 0.0.0.0/255.255.255.255 is IIS's stand-in for "only the list below" with nothing listed. */
const PLACEHOLDER = '0.0.0.0';

function mapAccess(ctx: Ctx): void {
  // Connection control (IPSecurity).
  const c = prop(ctx, 'IPSecurity');
  const cl = c && c.value.trim() ? decodeList(ctx, c) : undefined;
  if (!c || !cl) {
    set(ctx, ['access', 'connection'], { mode: 'all-except', list: [] }, 'IIS: Access → Connection: all except the list below (nothing listed)');
    report(ctx, c ?? 'IPSecurity', 'mapped', 'every client may connect, as in IIS', 'access.connection');
  } else if (cl.grantByDefault) {
    set(ctx, ['access', 'connection'], { mode: 'all-except', list: cl.deny.map((e) => e.range) }, 'IIS: Access → Connection: all except the list below');
    report(ctx, c, 'mapped', `all except ${cl.deny.length} address(es)/range(s): ${cl.deny.map((e) => e.range).join(', ') || '(none)'}`, 'access.connection', `(${cl.deny.length} denied)`);
    if (cl.denyNames.length) report(ctx, `${c.name} (domain names)`, 'admin', `IIS refused clients by DNS name (${cl.denyNames.join(', ')}); smarthost lists addresses only, so THESE CLIENTS CAN CONNECT: add their addresses to access.connection.list`, 'access.connection.list', cl.denyNames.join(', '));
  } else {
    const list = cl.grant.filter((e) => e.address !== PLACEHOLDER).map((e) => e.range);
    set(ctx, ['access', 'connection'], { mode: 'only', list }, 'IIS: Access → Connection: only the list below');
    report(ctx, c, 'mapped', `only ${list.length} address(es)/range(s): ${list.join(', ') || '(none: nobody may connect)'}`, 'access.connection', `(${list.length} granted)`);
    if (cl.grantNames.length) report(ctx, `${c.name} (domain names)`, 'no-equivalent', `IIS also let clients in by DNS name (${cl.grantNames.join(', ')}); smarthost lists addresses only: add their addresses if they still send`, 'access.connection.list', cl.grantNames.join(', '));
  }

  // Relay restrictions (RelayIpList).
  const r = prop(ctx, 'RelayIpList');
  if (!r) {
    set(ctx, ['access', 'relay'], { mode: 'only', list: [] }, 'IIS: Access → Relay: only the list below (nothing listed)');
    report(ctx, 'RelayIpList', 'mapped', 'not set: IIS\'s default, "only the list below" with nothing listed: no client relays by address', 'access.relay');
  } else {
    const rl = r.value.trim() ? decodeList(ctx, r) : undefined;
    if (!rl || rl.empty) {
      set(ctx, ['access', 'relay'], { mode: 'only', list: [] }, 'IIS relayed for everyone here (empty list): NOT copied; add your devices');
      report(ctx, r, 'admin', 'the list is empty, which IIS reads as "all except the list below" with nothing listed: an OPEN RELAY. smarthost does not copy that: relay is "only" an empty list, so no client relays by address until you add your devices\' addresses to access.relay.list', 'access.relay', '(empty)');
    } else if (rl.grantByDefault) {
      const list = rl.deny.map((e) => e.range);
      set(ctx, ['access', 'relay'], { mode: 'all-except', list }, 'IIS: Access → Relay: all except the list below; every other client may relay');
      report(ctx, r, 'admin', `"all except the list below" (${list.join(', ') || 'nothing listed'}): every other client that can connect may relay to any domain. Written as in IIS; unless access.connection limits who connects, prefer mode: only with your devices`, 'access.relay', `(${list.length} denied)`);
      if (rl.denyNames.length) report(ctx, `${r.name} (domain names)`, 'admin', `IIS refused relay to clients by DNS name (${rl.denyNames.join(', ')}); smarthost lists addresses only, so THESE CLIENTS CAN RELAY: add their addresses to access.relay.list`, 'access.relay.list', rl.denyNames.join(', '));
    } else {
      const list = rl.grant.filter((e) => e.address !== PLACEHOLDER).map((e) => e.range);
      set(ctx, ['access', 'relay'], { mode: 'only', list }, 'IIS: Access → Relay: only the list below');
      report(ctx, r, 'mapped', `only ${list.length} address(es)/range(s): ${list.join(', ') || '(none)'}`, 'access.relay', `(${list.length} granted)`);
      if (rl.grantNames.length) report(ctx, `${r.name} (domain names)`, 'no-equivalent', `IIS also let clients relay by DNS name (${rl.grantNames.join(', ')}); smarthost lists addresses only: add their addresses if they still send`, 'access.relay.list', rl.grantNames.join(', '));
    }
  }

  const a = prop(ctx, 'RelayForAuth');
  const relayForAuth = a ? dword(ctx, a) !== 0 : false;
  set(ctx, ['access', 'relayForAuthenticated'], relayForAuth, 'IIS: Relay → "Allow all computers which successfully authenticate to relay"');
  report(ctx, a ?? 'RelayForAuth', 'mapped', relayForAuth ? 'checked: a client that logged in may relay' : 'not checked: logging in does not grant relay', 'access.relayForAuthenticated');
}

function mapAuth(ctx: Ctx): void {
  const p = prop(ctx, 'AuthFlags');
  // MD_AUTH_ANONYMOUS 1, MD_AUTH_BASIC 2, MD_AUTH_NT 4 (AuthFlags metabase property).
  const flags = p ? dword(ctx, p, true) : 1;
  const anonymous = (flags & 1) !== 0;
  const basic = (flags & 2) !== 0;
  const ntlm = (flags & 4) !== 0;
  set(ctx, ['auth', 'enabled'], basic, basic ? 'IIS: Access → Authentication → Basic' : 'IIS: Access → Authentication → Anonymous access only');
  if (basic) set(ctx, ['auth', 'usersFile'], 'users.yaml', 'create it: smarthost users add users.yaml NAME');
  if (!anonymous) set(ctx, ['auth', 'required'], true, 'IIS: Anonymous access not allowed');
  const words = [anonymous && 'anonymous', basic && 'Basic', ntlm && 'Integrated Windows (NTLM)'].filter(Boolean).join(' + ') || 'nothing';
  if (basic) {
    report(ctx, p ?? 'AuthFlags', 'admin', `${words}: IIS checked Windows accounts, which cannot be carried over. Create the SMTP users in users.yaml (smarthost users add users.yaml NAME); smarthost offers AUTH only after STARTTLS unless auth.allowInsecure`, 'auth', p ? undefined : '(not set: anonymous)');
  } else {
    report(ctx, p ?? 'AuthFlags', ntlm ? 'admin' : 'mapped', ntlm ? `${words}: smarthost has no Integrated Windows authentication; clients that used it must use Basic (AUTH PLAIN/LOGIN) with users in auth.usersFile` : `${words}: no AUTH offered, as in IIS`, 'auth', p ? undefined : '(not set: anonymous)');
  }
}

function mapLimits(ctx: Ctx): void {
  const size = prop(ctx, 'MaxMessageSize');
  if (size) {
    const n = dword(ctx, size);
    if (UNLIMITED.has(n)) report(ctx, size, 'not-needed', 'unlimited in IIS; smarthost keeps its 35 MB default (Microsoft 365\'s own limit)');
    else {
      set(ctx, ['limits', 'maxMessageSize'], sizeText(n), 'IIS: Messages → Limit message size to (KB)');
      report(ctx, size, 'mapped', `${sizeText(n)}, advertised with SIZE`, 'limits.maxMessageSize');
    }
  }
  const session = prop(ctx, 'MaxSessionSize');
  if (session) report(ctx, session, 'no-equivalent', 'smarthost has no limit on the data of a whole session; each message is bounded by limits.maxMessageSize and limits.maxRecipients');
  const rcpt = prop(ctx, 'MaxRecipients');
  if (rcpt) {
    const n = dword(ctx, rcpt);
    if (UNLIMITED.has(n)) report(ctx, rcpt, 'not-needed', 'unlimited in IIS; smarthost keeps 100 (more get 452 4.5.3 and the client sends the rest in another transaction)');
    else {
      set(ctx, ['limits', 'maxRecipients'], n, 'IIS: Messages → Limit number of recipients per message to');
      report(ctx, rcpt, 'mapped', `${n} recipients per message`, 'limits.maxRecipients');
    }
  }
  const conns = prop(ctx, 'MaxConnections');
  if (conns) {
    const n = dword(ctx, conns);
    if (UNLIMITED.has(n)) report(ctx, conns, 'not-needed', 'unlimited in IIS; smarthost keeps 500 in all and 20 per client address');
    else {
      set(ctx, ['limits', 'maxConnections'], n, 'IIS: General → Limit number of connections to');
      report(ctx, conns, 'mapped', `${n} concurrent inbound connections`, 'limits.maxConnections');
    }
  }
  const idle = prop(ctx, 'ConnectionTimeout');
  if (idle) {
    const n = dword(ctx, idle);
    if (n > 0) {
      set(ctx, ['limits', 'idleTimeout'], n % 60 === 0 ? minutesText(n / 60) : `${n}s`, 'IIS: General → Connection time-out (minutes; stored in seconds)');
      report(ctx, idle, 'mapped', `an idle client is disconnected after ${n} s`, 'limits.idleTimeout');
    } else report(ctx, idle, 'not-needed', 'no time-out in IIS; smarthost keeps 300 s');
  }
}

function mapUpstream(ctx: Ctx): void {
  const host = prop(ctx, 'SmartHost');
  const type = prop(ctx, 'SmartHostType');
  const typeN = type ? dword(ctx, type) : host && host.value.trim() ? 2 : 0;
  const route = prop(ctx, 'RouteAction');
  const ra = route ? dword(ctx, route) : 0;
  const ssl = prop(ctx, 'AlwaysUseSsl');
  const user = prop(ctx, 'RouteUserName');
  const pass = prop(ctx, 'RoutePassword');
  const port = prop(ctx, 'RemoteSmtpPort');
  const hostName = host?.value.trim().replace(/^\[(.*)\]$/, '$1') ?? '';

  if (!hostName || typeN === 0) {
    report(ctx, host ?? 'SmartHost', 'admin', 'no smart host: IIS delivered straight to each recipient\'s mail server (MX). smarthost delivers only through upstreams: add one (for Microsoft 365 without a mailbox, a connector:// upstream, docs/microsoft-365.md); until then mail waits in the queue', 'upstreams');
    if (type) report(ctx, type, 'not-needed', 'no smart host is used');
    for (const p of [route, ssl, user, pass, port]) if (p) report(ctx, p, 'not-needed', 'belongs to outbound delivery, which needs an upstream first (see SmartHost)');
    for (const n of ['RemoteTimeout', 'MaxOutConnections', 'MaxOutConnectionsPerDomain', 'MaxBatchedMessages']) {
      const p = prop(ctx, n);
      if (p) report(ctx, p, 'not-needed', 'belongs to outbound delivery, which needs an upstream first (see SmartHost)');
    }
    ctx.cfg.upstreams = [];
    return;
  }

  if (!/^[A-Za-z0-9.-]+$/.test(hostName) && !/^[0-9a-fA-F:.]+$/.test(hostName)) fail(ctx, host!, `"${show(host!.value)}" is not a host name or IP address`);
  const o365 = /(^|\.)(office365\.com|outlook\.com)$/i.test(hostName);
  const name = o365 ? 'office365' : 'smarthost';
  const portN = port ? dword(ctx, port) : 25;
  if (port && (portN < 1 || portN > 65535)) fail(ctx, port, `port ${portN} is not 1–65535`);
  const tls = (ssl ? bool(ssl) : false) || (ra & 0x4) !== 0;
  const cleartext = (ra & 0x100) !== 0;
  const ntlm = (ra & 0x80) !== 0;
  const username = user?.value.trim();
  const url = `${tls ? 'smtp+starttls' : 'smtp'}://${hostName.includes(':') ? `[${hostName}]` : hostName}:${portN}`;
  const up: Record<string, unknown> = { name, url };
  set(ctx, ['upstreams', 0, 'name'], name);
  set(ctx, ['upstreams', 0, 'url'], url, `IIS: Delivery → Advanced → Smart host; Outbound connections → TCP port; Outbound Security → TLS encryption ${tls ? 'on' : 'OFF'}`);
  report(ctx, host!, 'mapped', `upstream "${name}": ${url}`, 'upstreams[0].url');
  if (type) {
    report(ctx, type, 'mapped', typeN === 1 ? '1 = try direct delivery first, then the smart host; smarthost always uses the smart host (it does no MX delivery)' : '2 = always use the smart host', 'upstreams[0]');
  }
  if (port) report(ctx, port, 'mapped', `port ${portN}`, 'upstreams[0].url');
  else report(ctx, 'RemoteSmtpPort', 'mapped', 'not set: port 25, as in IIS', 'upstreams[0].url');
  if (ssl) report(ctx, ssl, 'mapped', bool(ssl) ? 'TLS required to the smart host: smtp+starttls://' : 'off', 'upstreams[0].url');
  if (route) report(ctx, route, ntlm ? 'admin' : 'mapped', [
    (ra & 0x4) ? 'TLS (0x4)' : '', cleartext ? 'Basic authentication (0x100)' : '', ntlm ? 'Integrated Windows authentication (0x80): smarthost cannot do NTLM to the smart host; use Basic (username/password), or OAuth2 for Microsoft 365 (docs/microsoft-365.md)' : '',
  ].filter(Boolean).join(', ') || 'anonymous, no TLS bit', 'upstreams[0]');
  if (!tls && !o365) {
    report(ctx, 'Outbound TLS', username ? 'admin' : 'no-equivalent', username ? 'IIS sent the smart-host password WITHOUT TLS; written as smtp:// to match, but switch to smtp+starttls:// if the smart host offers STARTTLS' : 'IIS did not use TLS to the smart host; written as smtp:// to match', 'upstreams[0].url', 'off');
  } else if (!tls && o365) {
    report(ctx, 'Outbound TLS', 'admin', 'TLS encryption was off, but Microsoft 365 requires STARTTLS before AUTH: written as smtp:// to match IIS; change it to smtp+starttls://', 'upstreams[0].url', 'off');
  }

  if (username) {
    const env = `SMARTHOST_${name.toUpperCase()}_PASSWORD`;
    set(ctx, ['upstreams', 0, 'username'], username, 'IIS: Outbound Security → Basic authentication → User name');
    set(ctx, ['upstreams', 0, 'password'], { env }, 'the metabase keeps this password encrypted: set the variable (or use { file: /etc/smarthost/password })');
    report(ctx, user!, cleartext ? 'mapped' : 'admin', cleartext ? `the account used to log in to the smart host${o365 ? '. Microsoft 365 accepts only From addresses this mailbox may send as (otherwise Microsoft refuses with 5.7.60 or 5.2.252 SendAsDenied; the seed post met it as 550 5.7.1): list the others in upstreams[0].sendAs, or use sender rules (docs/microsoft-365.md)' : ''}` : 'a user name is set but RouteAction does not select Basic authentication (0x100): written anyway; check Delivery → Outbound Security', 'upstreams[0].username');
    report(ctx, pass ?? 'RoutePassword', 'admin', `the metabase does not give the password back (it is stored encrypted). Put it in the environment variable ${env} (or change password: to { file: PATH } naming a file that holds it)${o365 ? '. Microsoft is switching Basic auth for SMTP AUTH off; docs/microsoft-365.md shows the same upstream with OAuth2' : ''}`, 'upstreams[0].password', pass ? '(encrypted)' : '(not set)');
  } else {
    if (pass) report(ctx, pass, 'not-needed', 'no user name is set, so IIS did not log in', undefined, '(encrypted)');
    if (cleartext) report(ctx, 'RouteUserName', 'admin', 'Basic authentication is selected but no user name is set: add username and password to the upstream', 'upstreams[0].username');
  }

  const timeout = prop(ctx, 'RemoteTimeout');
  if (timeout) {
    const n = dword(ctx, timeout);
    if (n > 0) {
      set(ctx, ['upstreams', 0, 'timeout'], n, 'IIS: Delivery → Outbound connections → Time-out (seconds)');
      report(ctx, timeout, 'mapped', `${n} s to wait for each smart-host reply`, 'upstreams[0].timeout');
    } else report(ctx, timeout, 'not-needed', 'no time-out in IIS; smarthost keeps 120 s per reply');
  }
  for (const n of ['MaxOutConnections', 'MaxOutConnectionsPerDomain']) {
    const p = prop(ctx, n);
    if (!p) continue;
    const v = dword(ctx, p);
    if (!UNLIMITED.has(v) && v < 10 && up.maxConnections === undefined) {
      up.maxConnections = v;
      set(ctx, ['upstreams', 0, 'maxConnections'], v, `IIS: Delivery → Outbound connections (${n})`);
      report(ctx, p, 'mapped', `${v} parallel connection(s) to the smart host`, 'upstreams[0].maxConnections');
    } else report(ctx, p, 'not-needed', `IIS's ceiling (${UNLIMITED.has(v) ? 'unlimited' : v}) for connections to all remote servers; smarthost keeps 10 parallel connections per upstream (upstreams[].maxConnections)`);
  }
  const batch = prop(ctx, 'MaxBatchedMessages');
  if (batch) {
    const v = dword(ctx, batch);
    if (!UNLIMITED.has(v)) {
      set(ctx, ['upstreams', 0, 'maxMessagesPerConnection'], v, 'IIS: Messages → Limit number of messages per connection to');
      report(ctx, batch, 'mapped', `${v} messages per connection`, 'upstreams[0].maxMessagesPerConnection');
    } else report(ctx, batch, 'not-needed', 'unlimited in IIS; smarthost renews a connection after 20 messages');
  }
}

function mapDelivery(ctx: Ctx): void {
  const masq = prop(ctx, 'MasqueradeDomain');
  if (masq && masq.value.trim()) {
    set(ctx, ['delivery', 'masqueradeDomain'], masq.value.trim(), 'IIS: Delivery → Advanced → Masquerade domain');
    report(ctx, masq, 'mapped', 'the envelope sender\'s domain is replaced with this one', 'delivery.masqueradeDomain');
  } else if (masq) report(ctx, masq, 'not-needed', 'empty');

  const retry = prop(ctx, 'SmtpRemoteProgressiveRetry');
  if (retry && retry.value.trim()) {
    const parts = retry.value.split(',').map((x) => x.trim());
    if (parts.some((x) => !/^\d+$/.test(x) || Number(x) === 0)) fail(ctx, retry, `expected minutes separated by commas such as "15,30,60,240", got "${show(retry.value)}"`);
    set(ctx, ['delivery', 'retry'], parts.map((x) => `${Number(x)}m`), 'IIS: Delivery → first, second, third and subsequent retry interval (minutes)');
    report(ctx, retry, 'mapped', `retry after ${parts.join(', ')} minutes, the last repeating`, 'delivery.retry');
  }
  const delay = prop(ctx, 'SmtpRemoteDelayExpireMinutes');
  if (delay) {
    const n = dword(ctx, delay);
    set(ctx, ['delivery', 'delayNotification'], minutesText(n), 'IIS: Delivery → Outbound → Delay notification');
    report(ctx, delay, 'mapped', n === 0 ? 'never' : `the sender hears of a delay after ${n} minutes`, 'delivery.delayNotification');
  }
  const exp = prop(ctx, 'SmtpRemoteNDRExpireMinutes');
  if (exp) {
    const n = dword(ctx, exp);
    if (n <= 0) fail(ctx, exp, 'an expiration time-out of 0 minutes would return every message at once');
    set(ctx, ['delivery', 'expiration'], minutesText(n), 'IIS: Delivery → Outbound → Expiration timeout');
    report(ctx, exp, 'mapped', `a message is returned after ${n} minutes in the queue`, 'delivery.expiration');
  }
  const hops = prop(ctx, 'HopCount');
  if (hops) {
    const n = dword(ctx, hops);
    if (n > 0) {
      set(ctx, ['delivery', 'maxHops'], n, 'IIS: Delivery → Advanced → Maximum hop count');
      report(ctx, hops, 'mapped', `more than ${n} Received: headers is a mail loop`, 'delivery.maxHops');
    } else report(ctx, hops, 'not-needed', '0: smarthost keeps 30');
  }
  const ndr = prop(ctx, 'SendNdrTo');
  if (ndr && ndr.value.trim()) {
    set(ctx, ['ndr', 'to'], 'both', 'the sender gets the NDR, and a copy goes to adminCopy');
    set(ctx, ['ndr', 'adminCopy'], ndr.value.trim(), 'IIS: Messages → Send copy of Non-Delivery Report to');
    report(ctx, ndr, 'mapped', 'a copy of every non-delivery report goes here', 'ndr.adminCopy');
  } else if (ndr) report(ctx, ndr, 'not-needed', 'empty');
  const bad = prop(ctx, 'SendBadTo');
  if (bad && bad.value.trim()) {
    report(ctx, bad, 'no-equivalent', 'smarthost mails no copy of bad mail: it keeps NAME.BAD with NAME.BDR (the reason in words) in mailroot/badmail, shown in the web console with a retry button; the NDR copy (ndr.adminCopy) reaches the same person for every failure');
  } else if (bad) report(ctx, bad, 'not-needed', 'empty');
}

function mapFolders(ctx: Ctx): void {
  const folders: Array<[string, string, string]> = [
    ['PickupDirectory', 'mailroot/pickup/', 'programs that drop message files into the IIS Pickup folder must write to MAILROOT/pickup/ instead (same file formats)'],
    ['QueueDirectory', 'mailroot/{incoming,active,deferred,hold}/', 'the queue is one file per message in state folders; `smarthost queue list` shows it'],
    ['BadMailDirectory', 'mailroot/badmail/', 'NAME.BAD (the message) and NAME.BDR (why), as IIS'],
    ['DropDirectory', '', 'local delivery (the Drop folder): smarthost relays only'],
  ];
  for (const [n, key, note] of folders) {
    const p = prop(ctx, n);
    if (!p) continue;
    if (key) report(ctx, p, 'mapped', `${note}; mailroot: is ./mailroot beside the config file unless set`, key);
    else report(ctx, p, 'not-needed', note);
  }
  const dd = prop(ctx, 'DefaultDomain');
  if (dd) report(ctx, dd, 'no-equivalent', 'IIS\'s local domain (mail to it went to the Drop folder); smarthost delivers nothing locally: mail to it is relayed like any other (access.localDomains lets any client send to a domain without relay rights)');
  const ssl = prop(ctx, 'AccessSSLFlags');
  if (ssl) {
    const v = dword(ctx, ssl, true);
    // MD_ACCESS_SSL 0x8: "Require secure channel (TLS)" (AccessSSLFlags metabase property).
    if (v & 0x8) report(ctx, ssl, 'admin', 'IIS required TLS from clients: set requireTls: true on the listeners and tls.cert / tls.key (IIS\'s certificate exported as PEM); smarthost otherwise uses a self-signed certificate', 'listen[].requireTls');
    else report(ctx, ssl, 'not-needed', 'TLS not required from clients, as smarthost\'s default');
  }
}

function mapDomains(ctx: Ctx): void {
  for (const d of ctx.server.domains) {
    const ra = Number(d.routeAction ?? 0);
    const p: MetabaseProperty = { name: `Domain ${d.name}`, value: d.routeAction ? `RouteAction ${d.routeAction}` : '', from: 'server', line: d.line };
    // SMTP_SMARTHOST 0x2: this remote domain is forwarded to a smart host of its own.
    if (Number.isFinite(ra) && (ra & 0x2)) report(ctx, p, 'admin', `remote domain ${d.name} is sent to its own smart host${d.smartHost ? ` (${d.smartHost})` : ''}; import-iis does not read domains: add an upstream and a sender rule, or check whether it is still needed`);
    else report(ctx, p, 'no-equivalent', `IIS domain entry ${d.name} (local or remote domain settings); import-iis does not read domains: check it in IIS Manager → Domains if it did more than the default`);
  }
}

// ---------------------------------------------------------------------------------------------

function toYaml(ctx: Ctx, file: string): string {
  const clean = Object.fromEntries(Object.entries(ctx.cfg).filter(([, v]) => v !== undefined));
  const doc = new Document(clean);
  const s = ctx.server;
  doc.commentBefore = [
    ` smarthost.yaml made by \`smarthost import-iis\` from ${file},`,
    ` SMTP virtual server ${s.id} ${s.name} (${s.location}).`,
    ' Read the report printed with it: items marked ADMIN need you before this relays as IIS did.',
    ' Check with: smarthost config check smarthost.yaml',
  ].join('\n');
  for (const { path, text } of ctx.comments) attachComment(doc, path, text);
  return doc.toString({ lineWidth: 0 });
}

/** Puts `text` as a comment above the key (maps) or item (sequences) at `path`. */
function attachComment(doc: Document, path: (string | number)[], text: string): void {
  const parent = path.length === 1 ? doc.contents : doc.getIn(path.slice(0, -1), true);
  const last = path[path.length - 1];
  let target: YamlNode | undefined;
  if (isMap(parent)) {
    const pair = (parent.items as Pair[]).find((p) => isScalar(p.key) && (p.key as Scalar).value === last);
    target = pair?.key as YamlNode | undefined;
  } else if (isSeq(parent) && typeof last === 'number') {
    target = parent.items[last] as YamlNode | undefined;
  }
  if (!target) return;
  target.commentBefore = target.commentBefore ? `${target.commentBefore}\n ${text}` : ` ${text}`;
}

// ---------------------------------------------------------------------------------------------

const LABEL: Record<Verdict, string> = { admin: 'ADMIN', mapped: 'MAPPED', 'no-equivalent': 'NO EQUIVALENT', 'not-needed': 'NOT NEEDED', unknown: 'NOT RECOGNISED' };

/** The report as text: one block per property, ADMIN items first. */
export function formatReport(r: ImportResult, file: string): string {
  const s = r.server;
  const lines = [`import-iis: ${file}, SMTP virtual server ${s.id} ${s.name} (${s.location})`, ''];
  for (const i of r.items) {
    const where = i.from === 'absent' ? 'not set' : i.from === 'derived' ? 'from the properties above' : i.from === 'service' ? `inherited from /LM/SmtpSvc${i.line ? `, line ${i.line}` : ''}` : `line ${i.line ?? '?'}`;
    lines.push(`${LABEL[i.verdict].padEnd(14)} ${i.property} = ${i.value}  (${where})${i.key ? `  → ${i.key}` : ''}`);
    lines.push(`${' '.repeat(15)}${i.note}`);
  }
  const count = (v: Verdict) => r.items.filter((i) => i.verdict === v).length;
  lines.push('', `${count('mapped')} mapped, ${count('admin')} need you (ADMIN), ${count('no-equivalent')} without an equivalent, ${count('not-needed')} not needed, ${count('unknown')} not recognised.`);
  lines.push(r.needsAdmin ? 'The config is written, but act on the ADMIN items above before relying on it (exit code 1).' : 'Nothing needs you: check the config with `smarthost config check` and start it.');
  return `${lines.join('\n')}\n`;
}
