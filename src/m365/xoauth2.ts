/**
 * SMTP AUTH XOAUTH2 helpers for the SMTP transport (src/transports/smtp.ts):
 *   xoauth2Response  the SASL string Exchange Online expects:
 *                    base64("user=" + mailbox + ^A + "auth=Bearer " + token + ^A^A);
 *   withTokenRetry   runs one submission with the cached token; when the upstream refuses it with
 *                    535 (5.7.3: expired or revoked token among other causes) it gets a fresh token
 *                    and tries exactly once more. A 535 after a fresh token is not retried: the caller
 *                    reports it (explainM365 says routeBroken) and the delivery manager parks the
 *                    route, so Microsoft's continuous-error throttle (5.2.25x) is never provoked.
 */
import type { TokenProvider } from './tokens.ts';

export function xoauth2Response(mailbox: string, accessToken: string): string {
  return Buffer.from(`user=${mailbox}\x01auth=Bearer ${accessToken}\x01\x01`, 'utf8').toString('base64');
}

/** Whether an SMTP error is an authentication refusal (535, or nodemailer's EAUTH). */
export function isAuthRefusal(e: unknown): boolean {
  const err = e as { responseCode?: number; code?: string };
  return err?.responseCode === 535 || err?.code === 'EAUTH';
}

/** Runs `submit` with a token; on an auth refusal, once more with a freshly fetched token. */
export async function withTokenRetry<T>(tokens: TokenProvider, submit: (accessToken: string) => Promise<T>): Promise<T> {
  const first = await tokens.getToken();
  try {
    return await submit(first);
  } catch (e) {
    if (!isAuthRefusal(e) || /5\.7\.139|5\.7\.30/.test(String((e as { response?: string }).response ?? ''))) throw e;
    tokens.invalidate();
    const fresh = await tokens.getToken();
    return submit(fresh);
  }
}

/**
 * The token source in the shape the SMTP transport takes (`tokenProvider` of createSmtpTransport):
 * `renew: true` (after the server refused a token) drops the cached one first.
 */
export function smtpTokenSource(tokens: TokenProvider): (opts?: { renew?: boolean }) => Promise<string> {
  return (opts) => {
    if (opts?.renew) tokens.invalidate();
    return tokens.getToken();
  };
}
