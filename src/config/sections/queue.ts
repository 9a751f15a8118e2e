/** The spool's own settings (src/queue). */
import { z } from 'zod';

export const queueSchema = z.strictObject({
  keepUnacknowledged: z.boolean().default(false).describe(
    'after a crash (the kernel still running), deliver a message that was stored but whose 250 never reached the client, who sends it again (two copies); '
    + 'false (default): such a message goes to badmail/ with the reason instead, so one copy arrives. After a reboot or power loss every stored message is delivered either way (docs/reliability.md)',
  ),
});

export type QueueConfig = z.infer<typeof queueSchema>;
