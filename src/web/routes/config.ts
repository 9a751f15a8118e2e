/**
 * /api/config: the running configuration and the file's text with secrets masked; validate an
 * edited text (problems with line and column) and apply it (written and reloaded by the relay,
 * as SIGHUP does). A "********" left in the edited text keeps the secret the file already has.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { checkConfigText, type ConfigProblem } from '../../config/load.ts';
import { maskSecrets } from '../../config/mask.ts';
import { audit } from '../auth.ts';
import { HttpError, parseInput } from '../http.ts';
import { maskConfigText, unmaskConfigText } from '../config-text.ts';
import type { RouteOptions } from './options.ts';

const textBody = z.strictObject({ text: z.string().max(1_000_000) });

export default async function configRoutes(app: FastifyInstance, { services, logger }: RouteOptions): Promise<void> {
  const cfg = services.config;
  const source = cfg.source ?? 'smarthost.yaml';

  async function validate(text: string): Promise<ConfigProblem[]> {
    return cfg.validate ? cfg.validate(text) : checkConfigText(text, source).errors;
  }

  app.get('/api/config', async () => ({
    source,
    current: maskSecrets(cfg.current()),
    text: maskConfigText(await cfg.text()),
  }));

  app.post('/api/config/validate', async (request) => {
    const { text } = parseInput(textBody, request.body);
    // Validate what would be applied: masks put back, so "********" is judged as the real secret.
    const problems = await validate(unmaskConfigText(text, await cfg.text()));
    return { ok: problems.length === 0, problems };
  });

  app.post('/api/config/apply', async (request, reply) => {
    const { text } = parseInput(textBody, request.body);
    const full = unmaskConfigText(text, await cfg.text());
    const problems = await validate(full);
    if (problems.length) {
      audit(logger, request, 'config apply refused (invalid)', { problems: problems.length });
      return reply.code(422).send({ ok: false, error: 'the configuration has errors; nothing was changed', problems });
    }
    const result = await cfg.apply(full);
    audit(logger, request, result.ok ? 'config applied and reloaded' : 'config apply failed', { message: result.message });
    if (!result.ok) throw new HttpError(422, result.message ?? 'the relay refused the configuration', result.problems);
    return { ok: true, message: result.message ?? 'configuration reloaded' };
  });
}
