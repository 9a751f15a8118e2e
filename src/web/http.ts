/**
 * HTTP edges of the console: input validation with zod, errors with plain-words messages, and the
 * one mapping from SmarthostError codes to HTTP statuses (style §3 item 6).
 *
 * Every error reply is JSON `{ error: "<words>", problems?: [...] }`; a 500 says "internal error"
 * and the details go to the log, never to the browser.
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import type { z } from 'zod';
import { SmarthostError, type ErrorCode } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';

export class HttpError extends Error {
  readonly statusCode: number;
  readonly problems?: unknown[];
  constructor(statusCode: number, message: string, problems?: unknown[]) {
    super(message);
    this.statusCode = statusCode;
    this.problems = problems;
  }
}

const STATUS_FOR: Partial<Record<ErrorCode, number>> = {
  SH_QUEUE_NOT_FOUND: 404,
  SH_CONFIG_INVALID: 422,
  SH_USAGE: 400,
  SH_PICKUP_FORMAT: 422,
  SH_UPSTREAM_CONNECT: 502,
  SH_UPSTREAM_AUTH: 502,
  SH_UPSTREAM_REJECT: 502,
  SH_TOKEN: 502,
  SH_DNS: 502,
};

/** Parses request input with a zod schema; a mismatch is a 400 naming each field and what it expects. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown): z.infer<S> {
  const r = schema.safeParse(value ?? {});
  if (r.success) return r.data;
  const problems = r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
  throw new HttpError(400, `invalid input: ${problems.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message)).join('; ')}`, problems);
}

export function installErrorHandler(app: FastifyInstance, logger: Logger): void {
  app.setErrorHandler((err: FastifyError | Error, request, reply) => {
    if (err instanceof HttpError) return reply.code(err.statusCode).send({ error: err.message, problems: err.problems });
    if (err instanceof SmarthostError) {
      const status = STATUS_FOR[err.code] ?? 500;
      if (status === 500) logger.error({ err, url: request.url }, 'console request failed');
      return reply.code(status).send({ error: status === 500 ? 'internal error (see the relay log)' : err.toString(), code: err.code });
    }
    const status = (err as FastifyError).statusCode;
    if (status && status < 500) return reply.code(status).send({ error: err.message });
    logger.error({ err: err.message, url: request.url }, 'console request failed');
    return reply.code(500).send({ error: 'internal error (see the relay log)' });
  });
}
