/**
 * Keys never logged, whatever object they are in. A module of its own so that the delivery thread's
 * logger (src/transports/smtp-thread-worker.ts) gets them without loading the relay's logger and its
 * pretty printer into the thread's heap.
 */
export const REDACT_PATHS = [
  'password', 'pass', 'secret', 'clientSecret', 'token', 'accessToken', 'refreshToken', 'authorization',
  '*.password', '*.pass', '*.secret', '*.clientSecret', '*.token', '*.accessToken', '*.refreshToken', '*.authorization',
  '*.*.password', '*.*.pass', '*.*.secret', '*.*.clientSecret', '*.*.accessToken', '*.*.refreshToken',
];
