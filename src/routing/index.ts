/**
 * Routing: which route (upstreams in failover order + sender policy + NDR sender) a message takes.
 * Rules (config `routing.rules`) are tried in order, first match wins; every condition a rule gives
 * must hold (envelope sender or its domain, From: domain, recipient domain, client address/CIDR,
 * authenticated user). No match: `routing.default`, else the implicit route "default" (every
 * upstream in order, as before routes existed). Recipient domains are matched per recipient, so a
 * message whose recipients need different routes comes back as several groups: the queue keeps one
 * file with each recipient's route (queue/record.ts).
 *
 * Rules are compiled once (sets, parsed CIDRs); choosing is a few set lookups per rule and
 * recipient, measured in docs/routing.md. Pure: no I/O.
 */
import { inRanges, normalizeAddress, parseRange, type Range } from '../core/cidr.ts';
import type { Config } from '../config/schema.ts';
import type { RouteConfig, RoutingRule } from '../config/sections/routing.ts';

export const DEFAULT_ROUTE = 'default';

export interface RouteContext {
  mailFrom: string;
  headerFrom?: string;
  recipients: readonly string[];
  clientAddress?: string;
  user?: string;
}

export interface RouteChoice {
  route: string;
  recipients: string[];
  /** Why, in words: "rule 2 (recipient domain fabrikam.com)" or "no rule matched: default route". */
  why: string;
}

export interface Router {
  /** Routes or rules are configured (else messages keep the behaviour from before routes). */
  readonly active: boolean;
  /** The route groups of a message, in the order of their first recipient. */
  choose(ctx: RouteContext): RouteChoice[];
  /**
   * At MAIL FROM (no recipients, no From: yet): every route the message may still take. One name
   * when the route is known already; rules that look at recipients or From: add theirs.
   */
  possibleRoutes(ctx: Omit<RouteContext, 'recipients' | 'headerFrom'>): string[];
  /** A route by name (the implicit "default" included). */
  route(name: string): RouteConfig | undefined;
  routes(): RouteConfig[];
}

interface Compiled {
  index: number;
  rule: RoutingRule;
  senders?: Set<string>;
  senderDomains?: Set<string>;
  fromDomains?: Set<string>;
  recipientDomains?: Set<string>;
  ranges?: Range[];
  users?: Set<string>;
}

const lower = (values?: string[]) => (values ? new Set(values.map((v) => v.trim().toLowerCase())) : undefined);
const domainOf = (address: string) => address.slice(address.lastIndexOf('@') + 1).toLowerCase();

function compile(rule: RoutingRule, index: number): Compiled {
  const senders = new Set<string>();
  const senderDomains = new Set<string>(rule.senderDomains?.map((d) => d.toLowerCase()) ?? []);
  for (const s of rule.senders ?? []) {
    const v = s.trim().toLowerCase();
    if (v.startsWith('*@')) senderDomains.add(v.slice(2));
    else if (!v.includes('@')) senderDomains.add(v);
    else senders.add(v);
  }
  const anySender = rule.senders || rule.senderDomains;
  return {
    index, rule,
    senders: anySender ? senders : undefined,
    senderDomains: anySender ? senderDomains : undefined,
    fromDomains: lower(rule.fromDomains),
    recipientDomains: lower(rule.recipientDomains),
    ranges: rule.clients?.map((c) => parseRange(c)).filter((r): r is Range => r !== undefined),
    users: lower(rule.users),
  };
}

/** The message-level conditions of a rule (everything but the recipient domain). */
function messageMatches(c: Compiled, ctx: Pick<RouteContext, 'headerFrom' | 'user'>, from: string, client: string): boolean {
  if (c.senders && !c.senders.has(from) && !c.senderDomains!.has(domainOf(from))) return false;
  if (c.fromDomains && !(ctx.headerFrom && c.fromDomains.has(domainOf(ctx.headerFrom)))) return false;
  if (c.ranges && !(client && inRanges(client, c.ranges))) return false;
  if (c.users && !(ctx.user && c.users.has(ctx.user.toLowerCase()))) return false;
  return true;
}

function describe(c: Compiled, recipient: string): string {
  const r = c.rule;
  const parts: string[] = [];
  if (r.senders || r.senderDomains) parts.push(`sender ${[...(r.senders ?? []), ...(r.senderDomains ?? [])].join(', ')}`);
  if (r.fromDomains) parts.push(`From: domain ${r.fromDomains.join(', ')}`);
  if (r.recipientDomains) parts.push(`recipient domain ${domainOf(recipient)}`);
  if (r.clients) parts.push(`client ${r.clients.join(', ')}`);
  if (r.users) parts.push(`user ${r.users.join(', ')}`);
  return `rule ${c.index + 1} (${parts.join('; ') || 'matches everything'})`;
}

export function createRouter(config: Pick<Config, 'routes' | 'routing' | 'upstreams'>): Router {
  const rules = config.routing.rules.map(compile);
  const byName = new Map(config.routes.map((r) => [r.name, r]));
  if (!byName.has(DEFAULT_ROUTE)) byName.set(DEFAULT_ROUTE, { name: DEFAULT_ROUTE, upstreams: config.upstreams.map((u) => u.name) });
  const fallback = config.routing.default ?? DEFAULT_ROUTE;
  const active = config.routes.length > 0 || rules.length > 0;
  // parsing the client address is the dearest step: only when a rule looks at it
  const needClient = rules.some((c) => c.ranges);
  return {
    active,
    route: (name) => byName.get(name),
    routes: () => [...byName.values()],
    choose(ctx) {
      const from = ctx.mailFrom.toLowerCase();
      const client = needClient && ctx.clientAddress ? normalizeAddress(ctx.clientAddress) : '';
      // message-level conditions once per rule, not once per recipient
      const candidates = rules.filter((c) => messageMatches(c, ctx, from, client));
      const groups = new Map<string, RouteChoice>();
      for (const recipient of ctx.recipients) {
        const domain = domainOf(recipient);
        const hit = candidates.find((c) => !c.recipientDomains || c.recipientDomains.has(domain));
        const route = hit ? hit.rule.route : fallback;
        const group = groups.get(route);
        if (group) group.recipients.push(recipient);
        else groups.set(route, { route, recipients: [recipient], why: hit ? describe(hit, recipient) : `no rule matched: ${config.routing.default ? `routing.default (${fallback})` : 'the default route (every upstream, in order)'}` });
      }
      return [...groups.values()];
    },
    possibleRoutes(ctx) {
      const from = ctx.mailFrom.toLowerCase();
      const client = needClient && ctx.clientAddress ? normalizeAddress(ctx.clientAddress) : '';
      const out = new Set<string>();
      for (const c of rules) {
        // the conditions known now must hold; From: and recipients are not known yet
        if (!messageMatches({ ...c, fromDomains: undefined }, ctx, from, client)) continue;
        out.add(c.rule.route);
        if (!c.fromDomains && !c.recipientDomains) return [...out];
      }
      out.add(fallback);
      return [...out];
    },
  };
}

/** Config-time advice: legacy `senders:` upstream choices are not used for routing once routes exist. */
export function routingWarnings(config: Pick<Config, 'routes' | 'routing' | 'senders' | 'upstreams'>): string[] {
  const out: string[] = [];
  if (!createRouter(config).active) return out;
  config.senders.forEach((s, i) => {
    if (!s.upstream) return;
    const cond = [s.clients.length ? `clients: [${s.clients.join(', ')}]` : '', s.users.length ? `users: [${s.users.join(', ')}]` : ''].filter(Boolean).join(', ');
    out.push(`senders[${i}].upstream (${s.upstream}) chooses nothing once routing: is configured; move it to a rule: routing.rules: - { ${cond}, route: ROUTE } with a route whose upstreams are [${s.upstream}] (its allow list and mode still apply)`);
  });
  return out;
}
