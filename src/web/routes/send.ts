/**
 * /api/send-test: the seed's Email.txt test from the browser — FROM, TO, SUBJECT and a line of
 * text, queued like any other message, so its fate shows in the queue and history.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { audit } from '../auth.ts';
import { parseInput } from '../http.ts';
import type { RouteOptions } from './options.ts';

// Printable, one line: a header value must not smuggle another header.
const oneLine = (max: number) => z.string().max(max).regex(/^[^\r\n]*$/, 'one line of text');
const address = z.string().min(3).max(320).regex(/^[^\s<>@]+@[^\s<>@]+$/, 'an address like name@example.com');
const sendBody = z.strictObject({
  from: address,
  to: address,
  subject: oneLine(200).default('Test email'),
  body: z.string().max(10_000).default('This is a test email sent from my SMTP server'),
});

export default async function sendRoutes(app: FastifyInstance, { services, logger }: RouteOptions): Promise<void> {
  app.post('/api/send-test', async (request) => {
    const input = parseInput(sendBody, request.body);
    const { id } = await services.sendTest(input);
    audit(logger, request, 'send test message', { id, from: input.from, to: input.to });
    return { id };
  });
}
