/** Client AUTH (IIS: Access → Authentication → Basic). Users live in a separate file with hashed passwords. */
import { z } from 'zod';
import { duration } from '../units.ts';

export const authSchema = z.strictObject({
  enabled: z.boolean().default(false).describe('offer AUTH PLAIN/LOGIN to clients'),
  usersFile: z.string().optional().describe('YAML file of users: "name: <scrypt hash>" (make hashes with `smarthost users hash`)'),
  allowInsecure: z.boolean().default(false).describe('allow AUTH before STARTTLS (passwords in clear text on the wire)'),
  required: z.boolean().default(false).describe('refuse mail from clients that did not authenticate'),
  maxFailures: z.number().int().min(1).default(5).describe('failed AUTH attempts per connection before it is closed (421 4.7.0)'),
  failureDelay: duration().prefault('1s').describe('pause after each failed AUTH, doubled per failure'),
});

export type AuthConfig = z.infer<typeof authSchema>;
