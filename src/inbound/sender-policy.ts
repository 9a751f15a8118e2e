/**
 * Sender policy (send-as), checked before the client hears 250: at MAIL FROM on the envelope sender,
 * and again at the end of DATA on the From header. Two questions are asked:
 *   1. may this client (by address, or by authenticated user) use this sender at all? (`senders:` rules)
 *   2. may the mailbox of the route the message takes send as this address? (`upstreams[].mailbox`
 *      + `sendAs`, of the route's first upstream; src/routing/send-as.ts)
 * A "no" is a `550 5.7.60` reply that names the address and the fix, at once, instead of an NDR
 * from Microsoft days later (the seeds' "550 5.7.1 Client does not have permissions to send as").
 *
 * Also holds the pure header rewrite for the rule modes, applied at delivery time:
 *   send-as    keep From and envelope (the mailbox needs Send As on the From address);
 *   rewrite    From and envelope sender become a fixed address, the original From goes to Reply-To
 *              (the IIS masquerade, done so replies still reach the device's owner);
 *   on-behalf  keep From, set Sender (and the envelope sender) to the upstream mailbox; the mailbox
 *              needs Send on Behalf. Side effect, from the seeds (000_ca73ced6ab05504b.txt): granting
 *              Send on Behalf through Outlook's Delegate Access makes the mailbox a *delegate*, and a
 *              delegate receives copies of the owner's meeting requests. Grant it with
 *              Set-Mailbox OWNER -GrantSendOnBehalfTo MAILBOX instead, or prefer Send As.
 * Pure functions: no I/O; the decision carries the reason.
 */
import type { PolicyDecision } from '../core/types.ts';
import { inRanges, normalizeAddress, parseRange, type Range } from '../core/cidr.ts';
import type { Config } from '../config/schema.ts';
import type { SenderRule } from '../config/sections/senders.ts';
import type { UpstreamConfig } from '../config/sections/upstreams.ts';
import { createRouter, type Router } from '../routing/index.ts';
import { addressAllowed, mailboxOf, routeSendAsProblem, upstreamSendAsProblem, type SendAsProblem } from '../routing/send-as.ts';
import type { SenderCheckContext } from './types.ts';

export type { SenderCheckContext };
/** The sender policy answers at once (no I/O), so its check is synchronous. */
export type SenderCheck = (ctx: SenderCheckContext) => PolicyDecision;

import type { SenderModeSpec } from '../routing/sender-mode.ts';
export type { SenderModeSpec };
export { addressAllowed, mailboxOf };

/** routes/routing/delivery are optional: without them the check is the one from before routes. */
type PolicyConfig = Pick<Config, 'senders' | 'upstreams'> & Partial<Pick<Config, 'routes' | 'routing' | 'delivery'>>;

interface CompiledRule {
  index: number;
  rule: SenderRule;
  ranges: Range[];
  users: Set<string>;
}

/**
 * Builds the check the listener calls at MAIL FROM (stage 'mail') and at end of DATA (stage 'data').
 * With routing configured, the mailbox of the route each recipient takes is asked (routing/send-as.ts):
 * at MAIL FROM when every route the message could still take refuses the envelope sender, at end
 * of DATA for every route the message uses (a split message is refused whole). Without routing, the
 * default route: the sender rule's upstream, else the first upstream (the one tried first).
 */
export function createSenderCheck(config: PolicyConfig): SenderCheck {
  const rules = compileRules(config.senders);
  const router = config.routes && config.routing ? createRouter({ routes: config.routes, routing: config.routing, upstreams: config.upstreams }) : undefined;
  const routing = router?.active ? router : undefined;
  return (ctx) => {
    const addresses = addressesToCheck(ctx);
    if (addresses.length === 0) return { verdict: 'none' };
    const match = findRule(rules, ctx);
    if (match) {
      for (const address of addresses) {
        if (!addressAllowed(address, match.rule.allow)) {
          const who = ctx.user ? `user ${ctx.user}` : `client ${ctx.clientAddress}`;
          return refuse(address, `${who} may not send as it (senders rule ${match.index + 1} allows ${match.rule.allow.join(', ')})`,
            `set the device to one of those addresses, or add it to that rule's allow list`);
        }
      }
    }
    if (routing) return checkRoutes(config, routing, ctx, match?.rule);
    const upstream = upstreamFor(config, match?.rule);
    const mode = match?.rule.mode ?? 'send-as';
    if (!upstream || mode === 'rewrite') return { verdict: 'accept', reason: mode === 'rewrite' ? `sender rewritten to ${match?.rule.rewriteTo}` : undefined };
    for (const address of addresses) {
      const problem = upstreamSendAsProblem(upstream, address, mode === 'on-behalf' ? 'on-behalf' : 'send-as');
      if (problem) return refuse(address, problem.why, problem.fix);
    }
    return { verdict: 'accept' };
  };
}

/**
 * The routes' send-as check. A `senders:` rule's rewrite / on-behalf is applied on the way into the
 * spool, so the route sees the addresses as stored: rewriteTo, or the rule upstream's mailbox as
 * envelope sender (on-behalf).
 */
function checkRoutes(config: PolicyConfig, router: Router, ctx: SenderCheckContext, rule: SenderRule | undefined): PolicyDecision {
  const headerFrom = ctx.stage === 'data' ? ctx.headerFrom?.trim() || undefined : undefined;
  let sender = { mailFrom: ctx.mailFrom, headerFrom };
  if (rule?.mode === 'rewrite' && rule.rewriteTo) sender = { mailFrom: ctx.mailFrom ? rule.rewriteTo : '', headerFrom: rule.rewriteTo };
  else if (rule?.mode === 'on-behalf') {
    const legacy = upstreamFor(config, rule);
    const mailbox = legacy ? mailboxOf(legacy) : undefined;
    if (mailbox && ctx.mailFrom) sender = { ...sender, mailFrom: mailbox };
  }
  const who = { mailFrom: ctx.mailFrom, clientAddress: ctx.clientAddress, user: ctx.user };
  if (ctx.stage === 'data' && ctx.recipients?.length) {
    for (const choice of router.choose({ ...who, headerFrom: ctx.headerFrom, recipients: ctx.recipients })) {
      const problem = problemOn(config, router, choice.route, sender);
      if (problem) return refuseOnRoute(problem, choice.route, `recipients ${choice.recipients.join(', ')}; ${choice.why}`);
    }
    return { verdict: 'accept' };
  }
  // MAIL FROM: refused only when no route the message could take would send it
  const names = router.possibleRoutes(who);
  const problems = names.map((n) => problemOn(config, router, n, sender));
  if (problems.every(Boolean)) return refuseOnRoute(problems[0]!, names[0], names.length > 1 ? `and on every other route it could take: ${names.slice(1).join(', ')}` : undefined);
  return { verdict: 'accept' };
}

function problemOn(config: PolicyConfig, router: Router, name: string, sender: { mailFrom?: string; headerFrom?: string }): SendAsProblem | undefined {
  const route = router.route(name);
  return route ? routeSendAsProblem(config, route, sender) : undefined;
}

function refuseOnRoute(problem: SendAsProblem, route: string, detail?: string): PolicyDecision {
  return refuse(problem.address, `on route ${route}${detail ? ` (${detail})` : ''}, ${problem.why}`, problem.fix.replace('sender mode rewrite', `sender mode rewrite on route ${route}`));
}

/** The rule, upstream and mode that apply to a client; the lead uses it to pick the route and the rewrite. */
export function senderRouteFor(config: PolicyConfig, ctx: Pick<SenderCheckContext, 'clientAddress' | 'user'>): { rule?: SenderRule; upstream?: UpstreamConfig; spec: SenderModeSpec } {
  const match = findRule(compileRules(config.senders), ctx);
  const upstream = upstreamFor(config, match?.rule);
  return { rule: match?.rule, upstream, spec: specFor(match?.rule, upstream) };
}

/** The SenderModeSpec of a rule (undefined rule = send-as). */
export function specFor(rule: SenderRule | undefined, upstream: UpstreamConfig | undefined): SenderModeSpec {
  if (rule?.mode === 'rewrite' && rule.rewriteTo) return { mode: 'rewrite', address: rule.rewriteTo };
  const mailbox = upstream ? mailboxOf(upstream) : undefined;
  if (rule?.mode === 'on-behalf' && mailbox) return { mode: 'on-behalf', mailbox };
  return { mode: 'send-as' };
}

function compileRules(senders: readonly SenderRule[]): CompiledRule[] {
  return senders.map((rule, index) => ({
    index,
    rule,
    ranges: rule.clients.map((c) => parseRange(c)).filter((r): r is Range => r !== undefined),
    users: new Set(rule.users.map((u) => u.toLowerCase())),
  }));
}

/** First rule naming the authenticated user, else first rule whose client ranges hold the address. */
function findRule(rules: CompiledRule[], ctx: Pick<SenderCheckContext, 'clientAddress' | 'user'>): CompiledRule | undefined {
  const user = ctx.user?.toLowerCase();
  if (user) {
    const byUser = rules.find((r) => r.users.has(user));
    if (byUser) return byUser;
  }
  const address = ctx.clientAddress ? normalizeAddress(ctx.clientAddress) : '';
  return rules.find((r) => r.ranges.length > 0 && address !== '' && inRanges(address, r.ranges));
}

function upstreamFor(config: PolicyConfig, rule: SenderRule | undefined): UpstreamConfig | undefined {
  if (rule?.upstream) return config.upstreams.find((u) => u.name === rule.upstream);
  return config.upstreams[0];
}

/** MAIL FROM at stage 'mail'; the From header (and the envelope again) at stage 'data'. The null sender is not checked. */
function addressesToCheck(ctx: SenderCheckContext): string[] {
  const list = [ctx.mailFrom, ctx.stage === 'data' ? ctx.headerFrom : undefined]
    .filter((a): a is string => typeof a === 'string' && a.trim() !== '')
    .map((a) => a.trim().toLowerCase());
  return [...new Set(list)];
}

function refuse(address: string, why: string, fix: string): PolicyDecision {
  return { verdict: 'reject', code: 550, status: '5.7.60', message: `Sender <${address}> refused: ${why}; fix: ${fix}` };
}

// The header rewrite itself lives in src/routing/sender-mode.ts: routes apply it at delivery time too.
export { applySenderMode } from '../routing/sender-mode.ts';
