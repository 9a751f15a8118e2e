/**
 * A small fetch-shaped HTTP client on node:http/https that honours an upstream's `ca` file and
 * `verifyCertificate` (Node's global fetch cannot be given extra CAs without a global agent), plus
 * the msal-node network module built on it. Used for the token endpoint and Microsoft Graph.
 * Guarantees: a timeout on every request; on failure, a rejected promise whose message names the URL
 * and says whether the whole request had been handed to the OS (requestMayHaveArrived).
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { readFileSync } from 'node:fs';
import type { INetworkModule, NetworkRequestOptions, NetworkResponse } from '@azure/msal-node';

export type FetchLike = (url: string, init?: { method?: string; headers?: Record<string, string>; body?: string | Buffer; signal?: AbortSignal }) => Promise<Response>;

export interface HttpOptions {
  /** PEM file of extra CA certificates to trust. */
  caFile?: string;
  /** Check the server's certificate (default true). */
  verify?: boolean;
  timeoutMs?: number;
}

/** A fetch-compatible function for http: and https: URLs. */
export function createFetch(opts: HttpOptions = {}): FetchLike {
  const ca = opts.caFile ? readFileSync(opts.caFile, 'utf8') : undefined;
  const timeoutMs = opts.timeoutMs ?? 120_000;
  return (url, init = {}) => new Promise<Response>((resolve, reject) => {
    const u = new URL(url);
    const body = init.body === undefined ? undefined : Buffer.isBuffer(init.body) ? init.body : Buffer.from(init.body, 'utf8');
    const headers: Record<string, string | number> = { ...(init.headers ?? {}) };
    if (body) headers['content-length'] = body.length;
    const common = { method: init.method ?? 'GET', headers, timeout: timeoutMs, signal: init.signal };
    const req = u.protocol === 'https:'
      ? httpsRequest(u, { ...common, ca, rejectUnauthorized: opts.verify !== false })
      : httpRequest(u, common);
    // 'finish': the last byte of the request was handed to the OS. A failure after it (a timeout, a
    // reset before the answer) leaves the server possibly having acted on the request.
    let sent = false;
    req.on('finish', () => { sent = true; });
    const fail = (e: Error) => reject(Object.assign(new Error(`${init.method ?? 'GET'} ${u.origin}${u.pathname}: ${e.message}`, { cause: e }), { requestSent: sent }));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) h.set(k, Array.isArray(v) ? v.join(', ') : v);
        const status = res.statusCode ?? 0;
        const nullBody = status === 204 || status === 304 || (status >= 100 && status < 200);
        resolve(new Response(nullBody ? null : Buffer.concat(chunks), { status, headers: h }));
      });
      res.on('error', fail);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${u.origin} within ${Math.round(timeoutMs / 1000)} s`)));
    req.on('error', fail);
    req.end(body);
  });
}

/** Whether a request that failed without an answer had been sent whole (the server may have acted on it). */
export function requestMayHaveArrived(e: unknown): boolean {
  return (e as { requestSent?: unknown } | null)?.requestSent === true;
}

/** msal-node's network module on top of createFetch, so the authority can use a private CA (tests, proxies). */
export function msalNetworkModule(fetchLike: FetchLike): INetworkModule {
  const call = async <T>(method: string, url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> => {
    const res = await fetchLike(url, { method, headers: options?.headers, body: options?.body });
    const text = await res.text();
    const headers: Record<string, string> = {};
    res.headers.forEach((v, k) => { headers[k.toLowerCase()] = v; });
    let body: unknown = {};
    try { body = text ? JSON.parse(text) : {}; } catch { body = { error: 'invalid_response', error_description: text.slice(0, 300) }; }
    return { headers, body: body as T, status: res.status };
  };
  return {
    sendGetRequestAsync: (url, options) => call('GET', url, options),
    sendPostRequestAsync: (url, options) => call('POST', url, options),
  };
}
